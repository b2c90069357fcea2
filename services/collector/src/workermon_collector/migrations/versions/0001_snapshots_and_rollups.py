"""Minute snapshots and hourly rollups.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIME = sa.DateTime(timezone=True)


def _durations(prefix: str) -> list[sa.Column[object]]:
    return [
        sa.Column(f"{prefix}_samples", sa.BigInteger(), nullable=True),
        sa.Column(f"{prefix}_p50_ms", sa.Double(), nullable=True),
        sa.Column(f"{prefix}_p95_ms", sa.Double(), nullable=True),
        sa.Column(f"{prefix}_p99_ms", sa.Double(), nullable=True),
        sa.Column(f"{prefix}_avg_ms", sa.Double(), nullable=True),
        sa.Column(f"{prefix}_sketch", sa.LargeBinary(), nullable=True),
    ]


def _counts() -> list[sa.Column[object]]:
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in ("waiting", "active", "delayed", "prioritized", "waiting_children", "completed", "failed")
    ]


def upgrade() -> None:
    """Create collector_queue_snapshots and collector_hourly_rollups."""
    op.create_table(
        "collector_queue_snapshots",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("minute", _TIME, nullable=False),
        *_counts(),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("completed_in_minute", sa.BigInteger(), nullable=False),
        sa.Column("failed_in_minute", sa.BigInteger(), nullable=False),
        sa.Column("retried_in_minute", sa.BigInteger(), nullable=False),
        sa.Column("counts_approximate", sa.Boolean(), nullable=False),
        sa.Column("completed_cumulative", sa.BigInteger(), nullable=False),
        sa.Column("failed_cumulative", sa.BigInteger(), nullable=False),
        sa.Column("collected_at", _TIME, nullable=False),
        sa.Column("collection_ms", sa.Double(), nullable=False),
        *_durations("processing"),
        *_durations("wait"),
        sa.Column("duration_source", sa.String(length=32), nullable=False),
        sa.Column("oldest_waiting_ms", sa.BigInteger(), nullable=True),
        sa.Column("online_workers", sa.Integer(), nullable=True),
        sa.Column("failures_by_category", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collector_queue_snapshots"),
        sa.UniqueConstraint("queue", "minute", name="uq_collector_queue_snapshots_queue_minute"),
    )
    op.create_index("ix_collector_queue_snapshots_minute", "collector_queue_snapshots", ["minute"])

    op.create_table(
        "collector_hourly_rollups",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("queue", sa.Text(), nullable=False),
        sa.Column("hour", _TIME, nullable=False),
        sa.Column("completed_in_hour", sa.BigInteger(), nullable=False),
        sa.Column("failed_in_hour", sa.BigInteger(), nullable=False),
        sa.Column("retried_in_hour", sa.BigInteger(), nullable=False),
        *_counts(),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("completed_cumulative", sa.BigInteger(), nullable=False),
        sa.Column("failed_cumulative", sa.BigInteger(), nullable=False),
        sa.Column("online_workers", sa.Integer(), nullable=True),
        sa.Column("oldest_waiting_ms", sa.BigInteger(), nullable=True),
        *_durations("processing"),
        *_durations("wait"),
        sa.Column("failures_by_category", _JSON, nullable=False),
        sa.Column("minutes_covered", sa.Integer(), nullable=False),
        sa.Column("approximate", sa.Boolean(), nullable=False),
        sa.Column("computed_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collector_hourly_rollups"),
        sa.UniqueConstraint("queue", "hour", name="uq_collector_hourly_rollups_queue_hour"),
    )
    op.create_index("ix_collector_hourly_rollups_hour", "collector_hourly_rollups", ["hour"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_collector_hourly_rollups_hour", table_name="collector_hourly_rollups")
    op.drop_table("collector_hourly_rollups")
    op.drop_index("ix_collector_queue_snapshots_minute", table_name="collector_queue_snapshots")
    op.drop_table("collector_queue_snapshots")
