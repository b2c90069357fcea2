"""Notification groups (FIRED notifications of one route and channel sent together) and escalation steps.

Revision ID: 0005_notify_groups
Revises: 0004_alerting_config
Create Date: 2026-12-06 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_notify_groups"
down_revision: str | None = "0004_alerting_config"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add group_key and group_leader_id to notification_deliveries, escalations to incidents."""
    op.add_column("notification_deliveries", sa.Column("group_key", sa.String(length=200), nullable=True))
    op.add_column("notification_deliveries", sa.Column("group_leader_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_notification_deliveries_group", "notification_deliveries", ["group_key", "status"])
    op.create_index("ix_notification_deliveries_leader", "notification_deliveries", ["group_leader_id"])
    # Existing rows get no steps taken; SQLite adds a NOT NULL column only with a default.
    op.add_column("incidents", sa.Column("escalations", sa.Text(), server_default="[]", nullable=False))


def downgrade() -> None:
    """Drop the group and escalation columns."""
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("escalations")
    op.drop_index("ix_notification_deliveries_leader", table_name="notification_deliveries")
    op.drop_index("ix_notification_deliveries_group", table_name="notification_deliveries")
    with op.batch_alter_table("notification_deliveries") as batch:
        batch.drop_column("group_leader_id")
        batch.drop_column("group_key")
