"""Silences, maintenance windows, and each incident's notification decisions.

Revision ID: 0003_silences
Revises: 0002_notifications
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_silences"
down_revision: str | None = "0002_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create incident_silences and incident_maintenance_windows; add notify_decisions and
    held_event_id to incidents."""
    op.create_table(
        "incident_silences",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("incident_type", sa.String(length=32), nullable=False),
        sa.Column("queue_glob", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("start_time", _TIME, nullable=False),
        sa.Column("end_time", _TIME, nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("create_time", _TIME, nullable=False),
        sa.Column("expired_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incident_silences"),
    )
    op.create_index("ix_incident_silences_end_time", "incident_silences", ["end_time"])
    op.create_table(
        "incident_maintenance_windows",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("incident_type", sa.String(length=32), nullable=False),
        sa.Column("queue_glob", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.Column("weekdays", sa.String(length=32), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("create_time", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_maintenance_windows"),
    )
    # Existing rows get an empty decision list; SQLite adds a NOT NULL column only with a default.
    op.add_column("incidents", sa.Column("notify_decisions", sa.Text(), server_default="[]", nullable=False))
    op.add_column("incidents", sa.Column("held_event_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the columns and the silences."""
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("held_event_id")
        batch.drop_column("notify_decisions")
    op.drop_table("incident_maintenance_windows")
    op.drop_index("ix_incident_silences_end_time", table_name="incident_silences")
    op.drop_table("incident_silences")
