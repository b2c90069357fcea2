"""Snapshot rows say when a queue's running totals started again from zero.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add collector_queue_snapshots.counters_reset (false for every existing row)."""
    with op.batch_alter_table("collector_queue_snapshots") as batch:
        batch.add_column(sa.Column("counters_reset", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    """Drop collector_queue_snapshots.counters_reset."""
    with op.batch_alter_table("collector_queue_snapshots") as batch:
        batch.drop_column("counters_reset")
