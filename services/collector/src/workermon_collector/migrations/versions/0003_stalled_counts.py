"""Snapshot rows and hourly rollups count the jobs BullMQ found stalled.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add collector_queue_snapshots.stalled_in_minute and collector_hourly_rollups.stalled_in_hour (0
    for existing rows: nothing was counted then)."""
    with op.batch_alter_table("collector_queue_snapshots") as batch:
        batch.add_column(sa.Column("stalled_in_minute", sa.BigInteger(), server_default="0", nullable=False))
    with op.batch_alter_table("collector_hourly_rollups") as batch:
        batch.add_column(sa.Column("stalled_in_hour", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    """Drop the stalled counts."""
    with op.batch_alter_table("collector_hourly_rollups") as batch:
        batch.drop_column("stalled_in_hour")
    with op.batch_alter_table("collector_queue_snapshots") as batch:
        batch.drop_column("stalled_in_minute")
