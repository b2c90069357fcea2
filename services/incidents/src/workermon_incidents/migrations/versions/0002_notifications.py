"""The notification delivery log.

Revision ID: 0002_notifications
Revises: 0001_incidents
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_notifications"
down_revision: str | None = "0001_incidents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create notification_deliveries (unique per transition and channel) and notification_attempts."""
    op.create_table(
        "notification_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("transition_seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("channel_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_deliveries"),
        sa.UniqueConstraint("transition_seq", "channel", name="uq_notification_deliveries_seq_channel"),
    )
    op.create_index(
        "ix_notification_deliveries_incident_id", "notification_deliveries", ["incident_id", "id"]
    )
    op.create_index(
        "ix_notification_deliveries_status_next", "notification_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "notification_attempts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", _ID, nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notification_attempts"),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["notification_deliveries.id"],
            name="fk_notification_attempts_delivery_id",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_notification_attempts_delivery_attempt"),
    )


def downgrade() -> None:
    """Drop both tables and their indexes."""
    op.drop_table("notification_attempts")
    op.drop_index("ix_notification_deliveries_status_next", table_name="notification_deliveries")
    op.drop_index("ix_notification_deliveries_incident_id", table_name="notification_deliveries")
    op.drop_table("notification_deliveries")
