"""Writing the snapshot tables: idempotent minute rows, hourly rollups, retention."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

from workermon_queues.counts import COUNT_FIELDS

from ..models import rollups, snapshots
from ..rows import SUMMARY_FIELDS, DurationSummary, SnapshotRow
from .parts import (
    HOUR,
    StoreState,
    _aware,
    _combine_summaries,
    _hour_number,
    _hour_number_sql,
    _hour_start,
    _max_optional,
    _Part,
    _part_columns,
    _sum_categories,
    _unpack,
    floor_time,
)


def _insert(dialect: str, table: Table) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database dialect {dialect!r}")


def _summary_values(prefix: str, summary: DurationSummary | None) -> dict[str, Any]:
    if summary is None:
        values: dict[str, Any] = {f"{prefix}_{name}": None for name in SUMMARY_FIELDS}
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
        "counters_reset": row.counters_reset,
        "stalled_in_minute": row.stalled_in_minute,
    }
    values.update(_summary_values("processing", row.processing))
    values.update(_summary_values("wait", row.wait))
    return values


def _rollup_values(queue: str, hour: datetime, parts: list[_Part], computed_at: datetime) -> dict[str, Any]:
    last = parts[-1]
    values: dict[str, Any] = {
        "queue": queue,
        "hour": hour,
        "completed_in_hour": sum(p.completed for p in parts),
        "failed_in_hour": sum(p.failed for p in parts),
        "retried_in_hour": sum(p.retried for p in parts),
        "stalled_in_hour": sum(p.stalled for p in parts),
        **dict(zip(COUNT_FIELDS, last.counts, strict=True)),
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


class SnapshotWrites(StoreState):
    """Minute writes, rollups and pruning."""

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
