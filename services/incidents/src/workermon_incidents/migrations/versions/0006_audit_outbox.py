"""The audit outbox (operators' changes carry their audit entry in their own transaction), and an index
on incidents.last_notice_time for the replay of released holds.

Revision ID: 0006_audit_outbox
Revises: 0005_notify_groups
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_audit_outbox"
down_revision: str | None = "0005_notify_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create incident_audit_outbox and ix_incidents_last_notice_time."""
    op.create_table(
        "incident_audit_outbox",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("request", sa.LargeBinary(), nullable=False),
        sa.Column("create_time", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_audit_outbox"),
    )
    op.create_index("ix_incidents_last_notice_time", "incidents", ["last_notice_time"])


def downgrade() -> None:
    """Drop the index and the outbox."""
    op.drop_index("ix_incidents_last_notice_time", table_name="incidents")
    op.drop_table("incident_audit_outbox")
