"""Tables of CollectorService: one row per queue and minute, and one per queue and hour (rollups).

Every table name starts with `collector_`, so the collector can share a database (and a schema) with
other services; its migrations keep their own version table for the same reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    text (which also sorts and compares correctly) and read back as aware UTC. Naive datetimes are
    refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} (expected timezone-aware UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a bigint identity.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")
# JSONB on PostgreSQL (compact, comparable); JSON text elsewhere.
JSONDict = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of the collector's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


class QueueSnapshot(Base):
    """One queue in one minute, as the collector saw it (rows.SnapshotRow).

    Durations are kept twice: percentiles ready to serve (a one-minute query reads no sketch) and
    the serialized DDSketch, so buckets and rollups merge exactly.
    """

    __tablename__ = "collector_queue_snapshots"
    __table_args__ = (
        UniqueConstraint("queue", "minute"),
        Index(None, "minute"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(Text)
    minute: Mapped[datetime] = mapped_column(UTCDateTime())
    waiting: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[int] = mapped_column(BigInteger)
    delayed: Mapped[int] = mapped_column(BigInteger)
    prioritized: Mapped[int] = mapped_column(BigInteger)
    waiting_children: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    paused: Mapped[bool] = mapped_column(Boolean)
    completed_in_minute: Mapped[int] = mapped_column(BigInteger)
    failed_in_minute: Mapped[int] = mapped_column(BigInteger)
    retried_in_minute: Mapped[int] = mapped_column(BigInteger)
    counts_approximate: Mapped[bool] = mapped_column(Boolean)
    completed_cumulative: Mapped[int] = mapped_column(BigInteger)
    failed_cumulative: Mapped[int] = mapped_column(BigInteger)
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    collection_ms: Mapped[float] = mapped_column(Double)
    processing_samples: Mapped[int | None] = mapped_column(BigInteger)
    processing_p50_ms: Mapped[float | None] = mapped_column(Double)
    processing_p95_ms: Mapped[float | None] = mapped_column(Double)
    processing_p99_ms: Mapped[float | None] = mapped_column(Double)
    processing_avg_ms: Mapped[float | None] = mapped_column(Double)
    processing_sketch: Mapped[bytes | None] = mapped_column(LargeBinary)
    wait_samples: Mapped[int | None] = mapped_column(BigInteger)
    wait_p50_ms: Mapped[float | None] = mapped_column(Double)
    wait_p95_ms: Mapped[float | None] = mapped_column(Double)
    wait_p99_ms: Mapped[float | None] = mapped_column(Double)
    wait_avg_ms: Mapped[float | None] = mapped_column(Double)
    wait_sketch: Mapped[bytes | None] = mapped_column(LargeBinary)
    duration_source: Mapped[str] = mapped_column(String(32), default="")
    oldest_waiting_ms: Mapped[int | None] = mapped_column(BigInteger)
    online_workers: Mapped[int | None] = mapped_column(Integer)
    failures_by_category: Mapped[dict[str, int]] = mapped_column(JSONDict)
    # The running totals are lower than the previous row's: counting started again (the Redis holding
    # them lost data), so a difference across this row is not a rate.
    counters_reset: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    stalled_in_minute: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)


class HourlyRollup(Base):
    """One queue in one complete hour, computed from its minute rows; kept far longer than they are.

    `minutes_covered` is how many minute rows went in: a minute written late makes the hour's row
    count exceed it, which is how the rollup job knows to recompute the hour.
    """

    __tablename__ = "collector_hourly_rollups"
    __table_args__ = (
        UniqueConstraint("queue", "hour"),
        Index(None, "hour"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(Text)
    hour: Mapped[datetime] = mapped_column(UTCDateTime())
    # Sums of the minutes' *_in_minute.
    completed_in_hour: Mapped[int] = mapped_column(BigInteger)
    failed_in_hour: Mapped[int] = mapped_column(BigInteger)
    retried_in_hour: Mapped[int] = mapped_column(BigInteger)
    stalled_in_hour: Mapped[int] = mapped_column(BigInteger, server_default="0", default=0)
    # State at the hour's last collected minute.
    waiting: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[int] = mapped_column(BigInteger)
    delayed: Mapped[int] = mapped_column(BigInteger)
    prioritized: Mapped[int] = mapped_column(BigInteger)
    waiting_children: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[int] = mapped_column(BigInteger)
    failed: Mapped[int] = mapped_column(BigInteger)
    paused: Mapped[bool] = mapped_column(Boolean)
    completed_cumulative: Mapped[int] = mapped_column(BigInteger)
    failed_cumulative: Mapped[int] = mapped_column(BigInteger)
    online_workers: Mapped[int | None] = mapped_column(Integer)
    # Largest queue latency of the hour.
    oldest_waiting_ms: Mapped[int | None] = mapped_column(BigInteger)
    # The minutes' sketches merged, and the merged sketch's percentiles.
    processing_samples: Mapped[int | None] = mapped_column(BigInteger)
    processing_p50_ms: Mapped[float | None] = mapped_column(Double)
    processing_p95_ms: Mapped[float | None] = mapped_column(Double)
    processing_p99_ms: Mapped[float | None] = mapped_column(Double)
    processing_avg_ms: Mapped[float | None] = mapped_column(Double)
    processing_sketch: Mapped[bytes | None] = mapped_column(LargeBinary)
    wait_samples: Mapped[int | None] = mapped_column(BigInteger)
    wait_p50_ms: Mapped[float | None] = mapped_column(Double)
    wait_p95_ms: Mapped[float | None] = mapped_column(Double)
    wait_p99_ms: Mapped[float | None] = mapped_column(Double)
    wait_avg_ms: Mapped[float | None] = mapped_column(Double)
    wait_sketch: Mapped[bytes | None] = mapped_column(LargeBinary)
    failures_by_category: Mapped[dict[str, int]] = mapped_column(JSONDict)
    minutes_covered: Mapped[int] = mapped_column(Integer)
    # Any minute of the hour had approximate counts.
    approximate: Mapped[bool] = mapped_column(Boolean)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


snapshots = cast(Table, QueueSnapshot.__table__)
rollups = cast(Table, HourlyRollup.__table__)
