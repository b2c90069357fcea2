"""The vocabulary both halves of the snapshot store share: points, counts, durations, hour
arithmetic and the summed parts of stored rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Table,
    cast,
    extract,
    func,
)
from sqlalchemy import literal_column as lit
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_queues.counts import COUNT_FIELDS, JobCounts

from .. import sketches
from ..models import snapshots
from ..rows import SUMMARY_FIELDS, DurationSummary, SnapshotRow

MAX_POINTS = 1_500


MINUTE = timedelta(minutes=1)


HOUR = timedelta(hours=1)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


DEFAULT_MINUTE_RETENTION = timedelta(hours=24)


Clock = Callable[[], datetime]


@dataclass(slots=True)
class Point:
    """One bucket of a queue's history (mirrors workermon.collector.v1.SnapshotPoint).

    A gap (no snapshot in the bucket) has has_data=False and every other field at its default.
    Points, like JobCounts, are not frozen only because frozen dataclasses cost ~5x to build and a
    day of minutes builds thousands of them; treat them as read-only.
    """

    time: datetime
    has_data: bool
    counts: JobCounts | None = None
    paused: bool = False
    completed: int = 0
    failed: int = 0
    retried: int = 0
    approximate: bool = False
    processing: DurationSummary | None = None
    wait: DurationSummary | None = None
    oldest_waiting_ms: int | None = None
    online_workers: int | None = None
    failures_by_category: dict[str, int] = field(default_factory=dict)
    stalled: int = 0


def floor_time(moment: datetime, step: timedelta) -> datetime:
    """The start of the epoch-aligned `step` bucket holding `moment` (aware UTC)."""
    moment = _aware(moment)
    return moment - (moment - EPOCH) % step


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()} (expected timezone-aware UTC)")
    return moment.astimezone(UTC)


def _hour_number(moment: datetime) -> int:
    return int((moment - EPOCH) // HOUR)


def _hour_start(number: int) -> datetime:
    return EPOCH + number * HOUR


def _hour_number_sql(column: Any, dialect: str) -> ColumnElement[int]:
    """Hours since the epoch of a UTC datetime column, in SQL.

    Constants are literal, not bound: PostgreSQL only matches a GROUP BY expression to the select
    list when both are textually identical, and two bind parameters are not.
    """
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", column) / lit("3600")), BigInteger)
    if dialect == "sqlite":
        # Stored as naive UTC text; strftime('%s') reads it as UTC.
        return cast(cast(func.strftime(lit("'%s'"), column), Integer) // lit("3600", Integer), BigInteger)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _epoch_seconds_sql(column: Any, dialect: str) -> ColumnElement[int]:
    """Whole seconds since the epoch of a UTC datetime column, in SQL (cheaper to ship than a timestamp)."""
    if dialect == "postgresql":
        return cast(extract("epoch", column), BigInteger)
    if dialect == "sqlite":
        return cast(func.strftime(lit("'%s'"), column), BigInteger)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _time_column(table: Table) -> ColumnElement[datetime]:
    """The bucket time of the snapshot table (minute) or the rollup table (hour)."""
    return table.c.minute if table is snapshots else table.c.hour


def _point_columns(table: Table) -> list[ColumnElement[Any]]:
    """Time, counts, paused, completed, failed, retried, approximate, oldest waiting, workers and
    categories of the snapshot or the rollup table, in that order (the first 16 values of a part)."""
    c = table.c
    minute_rows = table is snapshots
    return [
        _time_column(table),
        *(c[name] for name in COUNT_FIELDS),
        c.paused,
        c.completed_in_minute if minute_rows else c.completed_in_hour,
        c.failed_in_minute if minute_rows else c.failed_in_hour,
        c.retried_in_minute if minute_rows else c.retried_in_hour,
        c.counts_approximate if minute_rows else c.approximate,
        c.oldest_waiting_ms,
        c.online_workers,
        c.failures_by_category,
    ]


def _part_columns(table: Table) -> list[ColumnElement[Any]]:
    """The columns of one part (the order `_unpack` reads), from the snapshot or the rollup table.

    Minute rows and rollups are selected into the same shape so buckets combine them alike.
    """
    c = table.c
    columns = [*_point_columns(table), c.completed_cumulative, c.failed_cumulative]
    for prefix in ("processing", "wait"):
        columns += [c[f"{prefix}_{name}"] for name in SUMMARY_FIELDS]
        columns.append(c[f"{prefix}_sketch"])
    columns.append(c.stalled_in_minute if table is snapshots else c.stalled_in_hour)
    return columns


@dataclass(slots=True)
class _Part:
    """One minute row or rollup, unpacked from its selected tuple."""

    time: datetime
    counts: tuple[int, ...]
    paused: bool
    completed: int
    failed: int
    retried: int
    approximate: bool
    oldest_waiting_ms: int | None
    online_workers: int | None
    categories: dict[str, int]
    completed_cumulative: int
    failed_cumulative: int
    processing: tuple[Any, ...]
    wait: tuple[Any, ...]
    stalled: int = 0


def _unpack(row: Sequence[Any]) -> _Part:
    width = 6  # samples, p50, p95, p99, avg, sketch
    return _Part(
        time=row[0],
        counts=tuple(row[1:8]),
        paused=row[8],
        completed=row[9],
        failed=row[10],
        retried=row[11],
        approximate=row[12],
        oldest_waiting_ms=row[13],
        online_workers=row[14],
        categories=row[15] or {},
        completed_cumulative=row[16],
        failed_cumulative=row[17],
        processing=tuple(row[18 : 18 + width]),
        wait=tuple(row[18 + width : 18 + 2 * width]),
        stalled=row[18 + 2 * width] or 0,
    )


@dataclass(slots=True)
class QueueSummary:
    """A queue's recent history in brief: the newest row, exact day totals, last hour's failure categories."""

    queue: str
    latest: SnapshotRow | None
    completed_24h: int = 0
    failed_24h: int = 0
    minutes_24h: int = 0
    failures_by_category_1h: dict[str, int] = field(default_factory=dict)
    processing_15m: DurationSummary | None = None
    wait_15m: DurationSummary | None = None


def _durations(summary: tuple[Any, ...]) -> DurationSummary | None:
    if summary[0] is None:
        return None
    return DurationSummary(int(summary[0]), summary[1], summary[2], summary[3], summary[4])


def _combine_summaries(summaries: Sequence[tuple[Any, ...]], keep_sketch: bool) -> DurationSummary | None:
    """Several (samples, p50, p95, p99, avg, sketch) into one, merging the sketches exactly.

    Samples and mean come from the columns (exact even where a sketch is missing); percentiles from
    the merged sketch. Without any sketch the part with the most samples speaks for the rest.
    """
    present = [s for s in summaries if s[0]]
    if not present:
        return None
    if len(present) == 1:
        s = present[0]
        return DurationSummary(int(s[0]), s[1], s[2], s[3], s[4], (s[5] or b"") if keep_sketch else b"")
    samples = sum(int(s[0]) for s in present)
    avg = sum(s[4] * int(s[0]) for s in present) / samples
    merged = sketches.summarize_merged((s[5] for s in present if s[5]), keep_sketch=keep_sketch)
    if merged is None:
        largest = max(present, key=lambda s: int(s[0]))
        return DurationSummary(samples, largest[1], largest[2], largest[3], avg, b"")
    return DurationSummary(samples, merged.p50_ms, merged.p95_ms, merged.p99_ms, avg, merged.sketch)


def _sum_categories(parts: Iterable[_Part]) -> dict[str, int]:
    total: dict[str, int] = defaultdict(int)
    for part in parts:
        for category, n in part.categories.items():
            total[category] += int(n)
    return dict(total)


def _max_optional(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _point(time: datetime, parts: list[_Part]) -> Point:
    """A bucket's point from its parts, in time order: sums, last values, max latency, merged durations."""
    last = parts[-1]
    if len(parts) == 1:
        return Point(
            time=time,
            has_data=True,
            counts=JobCounts(*last.counts),
            paused=last.paused,
            completed=last.completed,
            failed=last.failed,
            retried=last.retried,
            approximate=last.approximate,
            processing=_durations(last.processing),
            wait=_durations(last.wait),
            oldest_waiting_ms=last.oldest_waiting_ms,
            online_workers=last.online_workers,
            failures_by_category=dict(last.categories),
            stalled=last.stalled,
        )
    return Point(
        time=time,
        has_data=True,
        counts=JobCounts(*last.counts),
        paused=last.paused,
        completed=sum(p.completed for p in parts),
        failed=sum(p.failed for p in parts),
        retried=sum(p.retried for p in parts),
        approximate=any(p.approximate for p in parts),
        processing=_combine_summaries([p.processing for p in parts], keep_sketch=False),
        wait=_combine_summaries([p.wait for p in parts], keep_sketch=False),
        oldest_waiting_ms=_max_optional(p.oldest_waiting_ms for p in parts),
        online_workers=last.online_workers,
        failures_by_category=_sum_categories(parts),
        stalled=sum(p.stalled for p in parts),
    )


class StoreState:
    """What both halves of the store share: the engine, its dialect, the clock, the minute retention."""

    _engine: AsyncEngine
    _dialect: str
    _clock: Clock
    minute_retention: timedelta
