"""Where snapshots live: idempotent minute writes, hourly rollups, retention, and bucketed history.

Works on PostgreSQL and SQLite through one SQLAlchemy Core code path; the few dialect-specific bits
(ON CONFLICT inserts, hour arithmetic) are chosen from the engine's dialect.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Table,
    Text,
    cast,
    delete,
    extract,
    func,
    select,
)
from sqlalchemy import literal_column as lit
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from . import sketches
from .models import rollups, snapshots
from .rows import DurationSummary, SnapshotRow

MAX_POINTS = 1_500
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_MINUTE_RETENTION = timedelta(hours=24)

Clock = Callable[[], datetime]

_COUNT_NAMES = ("waiting", "active", "delayed", "prioritized", "waiting_children", "completed", "failed")
_SUMMARY_NAMES = ("samples", "p50_ms", "p95_ms", "p99_ms", "avg_ms")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class JobCounts:
    """Jobs per state (mirrors workermon.collector.v1.JobCounts)."""

    waiting: int
    active: int
    delayed: int
    prioritized: int
    waiting_children: int
    completed: int
    failed: int


@dataclass(slots=True)
class Durations:
    """A duration distribution in milliseconds (mirrors workermon.collector.v1.Durations)."""

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float


@dataclass(slots=True)
class Point:
    """One bucket of a queue's history (mirrors workermon.collector.v1.SnapshotPoint).

    A gap (no snapshot in the bucket) has has_data=False and every other field at its default.
    Points, like JobCounts and Durations, are not frozen only because frozen dataclasses cost ~5x
    to build and a day of minutes builds thousands of them; treat them as read-only.
    """

    time: datetime
    has_data: bool
    counts: JobCounts | None = None
    paused: bool = False
    completed: int = 0
    failed: int = 0
    retried: int = 0
    approximate: bool = False
    processing: Durations | None = None
    wait: Durations | None = None
    oldest_waiting_ms: int | None = None
    online_workers: int | None = None
    failures_by_category: dict[str, int] = field(default_factory=dict)


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


def _insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _summary_values(prefix: str, summary: DurationSummary | None) -> dict[str, Any]:
    if summary is None:
        values: dict[str, Any] = {f"{prefix}_{name}": None for name in _SUMMARY_NAMES}
        values[f"{prefix}_sketch"] = None
        return values
    return {
        f"{prefix}_samples": summary.samples,
        f"{prefix}_p50_ms": summary.p50_ms,
        f"{prefix}_p95_ms": summary.p95_ms,
        f"{prefix}_p99_ms": summary.p99_ms,
        f"{prefix}_avg_ms": summary.avg_ms,
        f"{prefix}_sketch": summary.sketch or None,
    }


def _row_values(row: SnapshotRow) -> dict[str, Any]:
    minute = _aware(row.minute)
    if minute.second or minute.microsecond:
        raise ValueError(f"snapshot minute {minute.isoformat()} is not at second 0")
    values: dict[str, Any] = {
        "queue": row.queue,
        "minute": minute,
        "waiting": row.waiting,
        "active": row.active,
        "delayed": row.delayed,
        "prioritized": row.prioritized,
        "waiting_children": row.waiting_children,
        "completed": row.completed,
        "failed": row.failed,
        "paused": row.paused,
        "completed_in_minute": row.completed_in_minute,
        "failed_in_minute": row.failed_in_minute,
        "retried_in_minute": row.retried_in_minute,
        "counts_approximate": row.counts_approximate,
        "completed_cumulative": row.completed_cumulative,
        "failed_cumulative": row.failed_cumulative,
        "collected_at": _aware(row.collected_at),
        "collection_ms": row.collection_ms,
        "duration_source": row.duration_source,
        "oldest_waiting_ms": row.oldest_waiting_ms,
        "online_workers": row.online_workers,
        "failures_by_category": {str(k): int(v) for k, v in row.failures_by_category.items()},
    }
    values.update(_summary_values("processing", row.processing))
    values.update(_summary_values("wait", row.wait))
    return values


def _summary_from(m: Any, prefix: str) -> DurationSummary | None:
    samples = m[f"{prefix}_samples"]
    if samples is None:
        return None
    return DurationSummary(
        samples=samples,
        p50_ms=m[f"{prefix}_p50_ms"],
        p95_ms=m[f"{prefix}_p95_ms"],
        p99_ms=m[f"{prefix}_p99_ms"],
        avg_ms=m[f"{prefix}_avg_ms"],
        sketch=m[f"{prefix}_sketch"] or b"",
    )


def _snapshot_from(row: Row[Any]) -> SnapshotRow:
    m = row._mapping
    return SnapshotRow(
        queue=m["queue"],
        minute=m["minute"],
        waiting=m["waiting"],
        active=m["active"],
        delayed=m["delayed"],
        prioritized=m["prioritized"],
        waiting_children=m["waiting_children"],
        completed=m["completed"],
        failed=m["failed"],
        paused=m["paused"],
        completed_in_minute=m["completed_in_minute"],
        failed_in_minute=m["failed_in_minute"],
        retried_in_minute=m["retried_in_minute"],
        counts_approximate=m["counts_approximate"],
        completed_cumulative=m["completed_cumulative"],
        failed_cumulative=m["failed_cumulative"],
        collected_at=m["collected_at"],
        collection_ms=m["collection_ms"],
        processing=_summary_from(m, "processing"),
        wait=_summary_from(m, "wait"),
        duration_source=m["duration_source"],
        oldest_waiting_ms=m["oldest_waiting_ms"],
        online_workers=m["online_workers"],
        failures_by_category=dict(m["failures_by_category"] or {}),
    )


# --- Combining several minutes (or hours) into one -----------------------------------------------


def _part_columns(table: Table) -> list[ColumnElement[Any]]:
    """The columns of one part (the order `_unpack` reads), from the snapshot or the rollup table.

    Minute rows and rollups are selected into the same shape so buckets combine them alike.
    """
    c = table.c
    minute_rows = table is snapshots
    columns: list[ColumnElement[Any]] = [
        c.minute if minute_rows else c.hour,
        *(c[name] for name in _COUNT_NAMES),
        c.paused,
        c.completed_in_minute if minute_rows else c.completed_in_hour,
        c.failed_in_minute if minute_rows else c.failed_in_hour,
        c.retried_in_minute if minute_rows else c.retried_in_hour,
        c.counts_approximate if minute_rows else c.approximate,
        c.oldest_waiting_ms,
        c.online_workers,
        c.failures_by_category,
        c.completed_cumulative,
        c.failed_cumulative,
    ]
    for prefix in ("processing", "wait"):
        columns += [c[f"{prefix}_{name}"] for name in _SUMMARY_NAMES]
        columns.append(c[f"{prefix}_sketch"])
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


def _durations(summary: tuple[Any, ...]) -> Durations | None:
    if summary[0] is None:
        return None
    return Durations(int(summary[0]), summary[1], summary[2], summary[3], summary[4])


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


def _to_durations(summary: DurationSummary | None) -> Durations | None:
    if summary is None:
        return None
    return Durations(summary.samples, summary.p50_ms, summary.p95_ms, summary.p99_ms, summary.avg_ms)


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
        processing=_to_durations(_combine_summaries([p.processing for p in parts], keep_sketch=False)),
        wait=_to_durations(_combine_summaries([p.wait for p in parts], keep_sketch=False)),
        oldest_waiting_ms=_max_optional(p.oldest_waiting_ms for p in parts),
        online_workers=last.online_workers,
        failures_by_category=_sum_categories(parts),
    )


def _rollup_values(queue: str, hour: datetime, parts: list[_Part], computed_at: datetime) -> dict[str, Any]:
    last = parts[-1]
    values: dict[str, Any] = {
        "queue": queue,
        "hour": hour,
        "completed_in_hour": sum(p.completed for p in parts),
        "failed_in_hour": sum(p.failed for p in parts),
        "retried_in_hour": sum(p.retried for p in parts),
        **dict(zip(_COUNT_NAMES, last.counts, strict=True)),
        "paused": last.paused,
        "completed_cumulative": last.completed_cumulative,
        "failed_cumulative": last.failed_cumulative,
        "online_workers": last.online_workers,
        "oldest_waiting_ms": _max_optional(p.oldest_waiting_ms for p in parts),
        "failures_by_category": _sum_categories(parts),
        "minutes_covered": len(parts),
        "approximate": any(p.approximate for p in parts),
        "computed_at": computed_at,
    }
    values.update(_summary_values("processing", _combine_summaries([p.processing for p in parts], True)))
    values.update(_summary_values("wait", _combine_summaries([p.wait for p in parts], True)))
    return values


class SnapshotStore:
    """The collector's tables behind an async API; safe for several processes writing at once."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        minute_retention: timedelta = DEFAULT_MINUTE_RETENTION,
        clock: Clock = _utcnow,
    ) -> None:
        """`minute_retention` decides when queries read minute rows; `clock` gives aware UTC now."""
        self._engine = engine
        self._dialect = engine.dialect.name
        self.minute_retention = minute_retention
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine

    # --- Minute rows ------------------------------------------------------------------------------

    async def write(self, rows: Sequence[SnapshotRow]) -> list[bool]:
        """Insert rows that are not there yet; for each row, whether this call wrote it.

        Idempotent per (queue, minute): an existing row is left alone (ON CONFLICT DO NOTHING), so
        two collectors writing the same minute at once end with exactly one row, and each of the
        two calls reports True for the rows it won. A row repeated within `rows` counts once.
        """
        if not rows:
            return []
        values = [_row_values(row) for row in rows]
        keys = [(v["queue"], v["minute"]) for v in values]
        # One canonical order for every writer: two transactions inserting overlapping keys in
        # different orders would each hold a key the other waits for (a deadlock on PostgreSQL).
        by_key: dict[tuple[str, datetime], dict[str, Any]] = {}
        for key, value in zip(keys, values, strict=True):
            by_key.setdefault(key, value)  # a row repeated within the call: the first one counts
        unique = sorted(by_key)
        stmt = (
            _insert(self._dialect, snapshots)
            .on_conflict_do_nothing(index_elements=["queue", "minute"])
            .returning(snapshots.c.queue, snapshots.c.minute)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt, [by_key[key] for key in unique])
            inserted = {(queue, minute) for queue, minute in result}
        claimed: set[tuple[str, datetime]] = set()
        outcome = []
        for key in keys:
            new = key in inserted and key not in claimed
            claimed.add(key)
            outcome.append(new)
        return outcome

    async def get(self, queue: str, minute: datetime) -> SnapshotRow | None:
        """The row of `queue` for `minute`, or None."""
        stmt = select(snapshots).where(snapshots.c.queue == queue, snapshots.c.minute == _aware(minute))
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _snapshot_from(row) if row is not None else None

    async def latest(self, queue: str) -> SnapshotRow | None:
        """The most recent row of `queue`, or None."""
        stmt = (
            select(snapshots).where(snapshots.c.queue == queue).order_by(snapshots.c.minute.desc()).limit(1)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return _snapshot_from(row) if row is not None else None

    async def queues(self) -> list[str]:
        """Every queue with minute rows or rollups, sorted."""
        stmt = select(snapshots.c.queue).union(select(rollups.c.queue))
        async with self._engine.connect() as conn:
            names = (await conn.execute(stmt)).scalars().all()
        return sorted(names)

    async def summarize(
        self, queues: Sequence[str] = ()
    ) -> tuple[datetime | None, list[QueueSummary], DurationSummary | None]:
        """Every queue's recent history in brief (see QueueSummary), relative to the newest minute stored.

        Returns that minute (None when nothing is stored), one summary per queue with rows, ordered by
        name, and the processing time of the last 15 minutes across all of them. Four indexed range
        reads: a dashboard asks for this every few seconds, never for 1,440 rows per queue.
        """
        c = snapshots.c
        wanted = sorted(set(queues))
        async with self._engine.connect() as conn:
            newest = (await conn.execute(select(func.max(c.minute)))).scalar()
            if newest is None:
                return None, [], None
            newest = _aware(newest)
            day = newest - timedelta(hours=24)

            def scoped(stmt: Select[Any], since: datetime) -> Select[Any]:
                stmt = stmt.where(c.minute > since, c.minute <= newest)
                return stmt.where(c.queue.in_(wanted)) if wanted else stmt

            latest_minute = scoped(
                select(c.queue, func.max(c.minute).label("minute")).group_by(c.queue), day
            ).subquery()
            latest_rows = (
                await conn.execute(
                    select(snapshots).join(
                        latest_minute,
                        (c.queue == latest_minute.c.queue) & (c.minute == latest_minute.c.minute),
                    )
                )
            ).all()
            sums = (
                await conn.execute(
                    scoped(
                        select(
                            c.queue,
                            func.sum(c.completed_in_minute),
                            func.sum(c.failed_in_minute),
                            func.count(),
                        ).group_by(c.queue),
                        day,
                    )
                )
            ).all()
            categories = (
                await conn.execute(
                    scoped(select(c.queue, c.failures_by_category), newest - HOUR).where(
                        c.failed_in_minute > 0
                    )
                )
            ).all()
            recent = (
                await conn.execute(
                    scoped(
                        select(
                            c.queue,
                            *(c[f"processing_{name}"] for name in _SUMMARY_NAMES),
                            c.processing_sketch,
                        ),
                        newest - timedelta(minutes=15),
                    ).where(c.processing_samples > 0)
                )
            ).all()
        by_queue: dict[str, QueueSummary] = {}
        for row in latest_rows:
            snapshot = _snapshot_from(row)
            by_queue[snapshot.queue] = QueueSummary(snapshot.queue, snapshot)
        for queue, completed, failed, minutes in sums:
            summary = by_queue.setdefault(queue, QueueSummary(queue, None))
            summary.completed_24h, summary.failed_24h, summary.minutes_24h = (
                int(completed or 0),
                int(failed or 0),
                int(minutes),
            )
        for queue, value in categories:
            if queue in by_queue:
                totals = by_queue[queue].failures_by_category_1h
                for category, n in (value or {}).items():
                    totals[category] = totals.get(category, 0) + int(n)
        per_queue_durations: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in recent:
            per_queue_durations[row[0]].append(tuple(row[1:]))
        for queue, summaries in per_queue_durations.items():
            if queue in by_queue:
                by_queue[queue].processing_15m = _combine_summaries(summaries, keep_sketch=False)
        overall = _combine_summaries([tuple(row[1:]) for row in recent], keep_sketch=False)
        return newest, [by_queue[name] for name in sorted(by_queue)], overall

    # --- Hourly rollups ---------------------------------------------------------------------------

    async def rollup(self, now: datetime, *, since: datetime | None = None) -> int:
        """Write the rollup of every complete hour (before `now`'s hour) that lacks one or is stale.

        Stale means the hour now has more minute rows than its rollup covered: a minute written
        late (the collector wrote buffered rows after a database outage). Recomputing is an upsert
        that never replaces a rollup by one covering fewer minutes, so concurrent runs are harmless.
        Only hours from `since` (default: the minute retention plus an hour before `now`) are
        examined, which bounds the scan to rows not yet pruned. Returns the rollups written.
        """
        now = _aware(now)
        complete_before = floor_time(now, HOUR)
        if since is None:
            since = floor_time(now - self.minute_retention, HOUR) - HOUR
        since = floor_time(_aware(since), HOUR)
        hour_no = _hour_number_sql(snapshots.c.minute, self._dialect)
        async with self._engine.connect() as conn:
            counted = await conn.execute(
                select(snapshots.c.queue, hour_no, func.count())
                .where(snapshots.c.minute >= since, snapshots.c.minute < complete_before)
                .group_by(snapshots.c.queue, hour_no)
            )
            present = {(queue, int(hour)): int(n) for queue, hour, n in counted}
            if not present:
                return 0
            covered_rows = await conn.execute(
                select(rollups.c.queue, rollups.c.hour, rollups.c.minutes_covered).where(
                    rollups.c.hour >= since, rollups.c.hour < complete_before
                )
            )
            covered = {(queue, _hour_number(hour)): n for queue, hour, n in covered_rows}
        stale: dict[str, set[int]] = defaultdict(set)
        for (queue, hour), n in present.items():
            if n > covered.get((queue, hour), 0):
                stale[queue].add(hour)
        written = 0
        for queue, hours in sorted(stale.items()):
            written += await self._rollup_queue(queue, hours)
        return written

    async def _rollup_queue(self, queue: str, hours: set[int]) -> int:
        first, last = _hour_start(min(hours)), _hour_start(max(hours)) + HOUR
        stmt = (
            select(*_part_columns(snapshots))
            .where(snapshots.c.queue == queue, snapshots.c.minute >= first, snapshots.c.minute < last)
            .order_by(snapshots.c.minute)
        )
        # Read and write in separate transactions: on SQLite a read transaction that later writes
        # fails outright (no busy wait) when another process wrote in between.
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        by_hour: dict[int, list[_Part]] = defaultdict(list)
        for row in rows:
            part = _unpack(row)
            hour = _hour_number(part.time)
            if hour in hours:
                by_hour[hour].append(part)
        if not by_hour:
            return 0
        computed_at = _aware(self._clock())
        values = [
            _rollup_values(queue, _hour_start(hour), parts, computed_at)
            for hour, parts in sorted(by_hour.items())
        ]
        insert = _insert(self._dialect, rollups)
        excluded = insert.excluded
        stmt_upsert = insert.on_conflict_do_update(
            index_elements=["queue", "hour"],
            set_={name: excluded[name] for name in values[0] if name not in ("queue", "hour")},
            # A run that read fewer minutes (it raced a late write) must not undo a fuller one.
            where=rollups.c.minutes_covered <= excluded.minutes_covered,
        ).returning(rollups.c.id)
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt_upsert, values)
            return len(result.all())

    # --- Retention --------------------------------------------------------------------------------

    async def prune(
        self,
        now: datetime,
        minute_retention: timedelta,
        rollup_retention: timedelta,
        batch: int = 500,
    ) -> tuple[int, int]:
        """Delete minute rows older than `minute_retention` and rollups older than `rollup_retention`.

        Hours about to lose their minute rows are rolled up first, so no history is dropped
        unsummarized. Rows go in batches of `batch`, each in its own short transaction, so
        collectors writing meanwhile never wait long for a lock. Returns (minute rows, rollups) deleted.
        """
        if batch < 1:
            raise ValueError("batch must be at least 1")
        now = _aware(now)
        await self.rollup(now, since=min(now - minute_retention, now - self.minute_retention) - HOUR)
        minutes = await self._delete_older(snapshots, snapshots.c.minute, now - minute_retention, batch)
        hours = await self._delete_older(rollups, rollups.c.hour, now - rollup_retention, batch)
        return minutes, hours

    async def _delete_older(self, table: Table, column: Any, cutoff: datetime, batch: int) -> int:
        total = 0
        while True:
            doomed = select(table.c.id).where(column < cutoff).order_by(column).limit(batch)
            async with self._engine.begin() as conn:
                result = await conn.execute(delete(table).where(table.c.id.in_(doomed.scalar_subquery())))
            deleted = max(result.rowcount or 0, 0)
            total += deleted
            if deleted < batch:
                return total
            # Let the collector's own writes through between batches.
            await asyncio.sleep(0)

    # --- History ----------------------------------------------------------------------------------

    def plan(self, start: datetime, end: datetime, step: timedelta) -> tuple[str, timedelta]:
        """The resolution a query of [start, end) reads and the step it then uses.

        "hourly" when `start` is beyond the minute retention (the step is then rounded up to whole
        hours: rollups cannot be split) or when the step is whole hours anyway (rollups give the
        same numbers as their 60 minutes, without merging 60 sketches per hour); otherwise
        "minute". Raises ValueError for a step that is not a positive whole number of minutes, an
        empty range, or more than MAX_POINTS buckets.
        """
        start, end = _aware(start), _aware(end)
        if step <= timedelta(0) or step % MINUTE:
            raise ValueError(f"step must be a positive whole number of minutes, got {step}")
        if end <= start:
            raise ValueError("end must be after start")
        if start < _aware(self._clock()) - self.minute_retention:
            resolution = "hourly"
            step = max(HOUR, -(-step // HOUR) * HOUR)
        else:
            resolution = "hourly" if step % HOUR == timedelta(0) else "minute"
        first = floor_time(start, step)
        buckets = -(-(end - first) // step)
        if buckets > MAX_POINTS:
            raise ValueError(f"{buckets} points at step {step}; at most {MAX_POINTS}")
        return resolution, step

    async def query(
        self, queue: str, start: datetime, end: datetime, step: timedelta
    ) -> tuple[list[Point], str]:
        """`queue`'s history over [start, end) in epoch-aligned buckets of `step`, gaps included.

        Returns the points (one per bucket, has_data=False where nothing was collected) and the
        resolution read, "minute" or "hourly" (see `plan` for the choice and for the step used).
        At the hourly resolution buckets hold whole hours, also at the range's edges, and hours not
        rolled up yet are read from their minute rows, so a range ending now does not end in a gap.
        """
        resolution, step = self.plan(start, end, step)
        start, end = _aware(start), _aware(end)
        if resolution == "minute" and step == MINUTE:
            return await self._minute_points(queue, start, end), resolution
        async with self._engine.connect() as conn:
            if resolution == "minute":
                parts = await self._parts(conn, snapshots, queue, start, end)
            else:
                rolled_until = floor_time(start, HOUR)
                parts = await self._parts(conn, rollups, queue, rolled_until, end)
                if parts:
                    rolled_until = parts[-1].time + HOUR
                if rolled_until < end:
                    parts += await self._parts(conn, snapshots, queue, rolled_until, end)
        return _bucket(parts, start, end, step), resolution

    async def _minute_points(self, queue: str, start: datetime, end: datetime) -> list[Point]:
        """One point per minute straight from the rows: the hot path of every dashboard.

        No sketch is read (each bucket holds one row, whose stored percentiles are the answer),
        times travel as epoch seconds and categories as JSON text parsed once per distinct value,
        which keeps a day of minutes (1,440 rows) within a few milliseconds of Python.
        """
        c = snapshots.c
        stmt = (
            select(
                _epoch_seconds_sql(c.minute, self._dialect),
                *(c[name] for name in _COUNT_NAMES),
                c.paused,
                c.completed_in_minute,
                c.failed_in_minute,
                c.retried_in_minute,
                c.counts_approximate,
                c.oldest_waiting_ms,
                c.online_workers,
                cast(c.failures_by_category, Text),
                *(c[f"processing_{name}"] for name in _SUMMARY_NAMES),
                *(c[f"wait_{name}"] for name in _SUMMARY_NAMES),
            )
            .where(c.queue == queue, c.minute >= start, c.minute < end)
            .order_by(c.minute)
        )
        async with self._engine.connect() as conn:
            rows = await _fetch_plain(conn, stmt)
        first = floor_time(start, MINUTE)
        first_s = int((first - EPOCH).total_seconds())
        by_index = {(r[0] - first_s) // 60: r for r in rows}
        categories: dict[str | None, dict[str, int]] = {}
        points: list[Point] = []
        for i in range(-(-(end - first) // MINUTE)):
            r = by_index.get(i)
            if r is None:
                points.append(Point(first + i * MINUTE, False))
                continue
            text = r[15]
            parsed = categories.get(text)
            if parsed is None:
                parsed = categories[text] = {str(k): int(v) for k, v in json.loads(text or "{}").items()}
            points.append(
                Point(
                    first + i * MINUTE,
                    True,
                    JobCounts(r[1], r[2], r[3], r[4], r[5], r[6], r[7]),
                    r[8],
                    r[9],
                    r[10],
                    r[11],
                    r[12],
                    None if r[16] is None else Durations(r[16], r[17], r[18], r[19], r[20]),
                    None if r[21] is None else Durations(r[21], r[22], r[23], r[24], r[25]),
                    r[13],
                    r[14],
                    # Shared between points with equal categories (points are read-only): a copy per
                    # minute would be 1,440 more objects for the garbage collector to walk.
                    parsed,
                )
            )
        return points

    @staticmethod
    async def _parts(
        conn: AsyncConnection,
        table: Table,
        queue: str,
        start: datetime,
        end: datetime,
    ) -> list[_Part]:
        time_column = table.c.minute if table is snapshots else table.c.hour
        stmt: Select[Any] = (
            select(*_part_columns(table))
            .where(table.c.queue == queue, time_column >= start, time_column < end)
            .order_by(time_column)
        )
        rows = (await conn.execute(stmt)).all()
        return [_unpack(row) for row in rows]


async def _fetch_plain(conn: AsyncConnection, stmt: Select[Any]) -> Sequence[Sequence[Any]]:
    """All rows of a select whose columns need no SQLAlchemy result processing (numbers, booleans, text).

    On PostgreSQL the rows come through psycopg in binary form: for a day of minutes (1,440 rows of
    26 values) decoding text results costs more than the query itself (measured ~25 ms against
    ~15 ms binary). The statement's parameters must be values psycopg adapts natively (here: a
    string and aware datetimes), since SQLAlchemy's bind processing is bypassed too.
    """
    if conn.dialect.name != "postgresql":
        result: Sequence[Sequence[Any]] = (await conn.execute(stmt)).all()
        return result
    compiled = stmt.compile(dialect=conn.dialect)
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    async with driver.cursor(binary=True) as cursor:
        await cursor.execute(str(compiled), compiled.params)
        rows: list[tuple[Any, ...]] = list(await cursor.fetchall())
    return rows


def _bucket(parts: list[_Part], start: datetime, end: datetime, step: timedelta) -> list[Point]:
    first = floor_time(start, step)
    count = -(-(end - first) // step)
    grouped: dict[int, list[_Part]] = defaultdict(list)
    for part in parts:
        grouped[(part.time - first) // step].append(part)
    points = []
    for index in range(count):
        time = first + index * step
        members = grouped.get(index)
        points.append(_point(time, members) if members else Point(time=time, has_data=False))
    return points
