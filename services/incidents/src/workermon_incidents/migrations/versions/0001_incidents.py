"""Incidents and their timeline.

Revision ID: 0001_incidents
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_incidents"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)
_OPEN = "status IN ('PENDING', 'ACTIVE', 'ACKNOWLEDGED')"
_INDEXES = {
    "ix_incidents_status_id": ["status", "id"],
    "ix_incidents_queue_id": ["queue", "id"],
    "ix_incidents_type_id": ["type", "id"],
    "ix_incidents_fingerprint_id": ["fingerprint", "id"],
}


def upgrade() -> None:
    """Create incidents (with at most one open row per fingerprint) and incident_events."""
    op.create_table(
        "incidents",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("queue", sa.Text(), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("recommended_action", sa.Text(), nullable=False),
        sa.Column("affected_jobs", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("pending_time", _TIME, nullable=False),
        sa.Column("start_time", _TIME, nullable=True),
        sa.Column("last_seen_time", _TIME, nullable=False),
        sa.Column("clear_since", _TIME, nullable=True),
        sa.Column("acknowledge_time", _TIME, nullable=True),
        sa.Column("resolve_time", _TIME, nullable=True),
        sa.Column("last_notice_time", _TIME, nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.Text(), nullable=True),
        sa.Column("resolve_note", sa.Text(), nullable=True),
        sa.Column("resolved_automatically", sa.Boolean(), nullable=False),
        sa.Column("notifications_sent", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index(
        "uq_incidents_open_fingerprint",
        "incidents",
        ["fingerprint"],
        unique=True,
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )
    for name, columns in _INDEXES.items():
        op.create_index(name, "incidents", columns)
    op.create_table(
        "incident_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("time", _TIME, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("incident", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_events"),
    )
    op.create_index("ix_incident_events_incident_id_id", "incident_events", ["incident_id", "id"])


def downgrade() -> None:
    """Drop both tables and their indexes."""
    op.drop_index("ix_incident_events_incident_id_id", table_name="incident_events")
    op.drop_table("incident_events")
    for name in _INDEXES:
        op.drop_index(name, table_name="incidents")
    op.drop_index("uq_incidents_open_fingerprint", table_name="incidents")
    op.drop_table("incidents")
