"""Reading the snapshot tables: one row, the latest, summaries, and bucketed history for a range."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    Table,
    Text,
    cast,
    func,
    select,
)
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from workermon_queues.counts import JobCounts

from ..models import rollups, snapshots
from ..rows import SUMMARY_FIELDS, DurationSummary, SnapshotRow
from .parts import (
    EPOCH,
    HOUR,
    MAX_POINTS,
    MINUTE,
    Point,
    QueueSummary,
    StoreState,
    _aware,
    _combine_summaries,
    _epoch_seconds_sql,
    _Part,
    _part_columns,
    _point,
    _point_columns,
    _time_column,
    _unpack,
    floor_time,
)


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


def _row_points(
    rows: Sequence[Sequence[Any]], first: datetime, end: datetime, step: timedelta
) -> list[Point]:
    """One point per `step` bucket from [first, end), each from the one row (of `_point_select`) in it.

    Categories are parsed once per distinct JSON text, which keeps a day of minutes (1,440 rows)
    within a few milliseconds of Python: the hot path of every dashboard.
    """
    first_s, step_s = int((first - EPOCH).total_seconds()), int(step.total_seconds())
    by_index = {(r[0] - first_s) // step_s: r for r in rows}
    categories: dict[str | None, dict[str, int]] = {}
    points: list[Point] = []
    for i in range(-(-(end - first) // step)):
        r = by_index.get(i)
        if r is None:
            points.append(Point(first + i * step, False))
            continue
        text = r[15]
        parsed = categories.get(text)
        if parsed is None:
            parsed = categories[text] = {str(k): int(v) for k, v in json.loads(text or "{}").items()}
        points.append(
            Point(
                first + i * step,
                True,
                JobCounts(r[1], r[2], r[3], r[4], r[5], r[6], r[7]),
                r[8],
                r[9],
                r[10],
                r[11],
                r[12],
                None if r[16] is None else DurationSummary(r[16], r[17], r[18], r[19], r[20]),
                None if r[21] is None else DurationSummary(r[21], r[22], r[23], r[24], r[25]),
                r[13],
                r[14],
                # Shared between points with equal categories (points are read-only): a copy per
                # minute would be 1,440 more objects for the garbage collector to walk.
                parsed,
                r[26] or 0,
            )
        )
    return points


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
        stalled_in_minute=m["stalled_in_minute"],
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
        counters_reset=bool(m["counters_reset"]),
    )


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


class SnapshotQueries(StoreState):
    """Rows, summaries and bucketed history."""

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
                            *(c[f"processing_{name}"] for name in SUMMARY_FIELDS),
                            c.processing_sketch,
                            *(c[f"wait_{name}"] for name in SUMMARY_FIELDS),
                            c.wait_sketch,
                        ),
                        newest - timedelta(minutes=15),
                    ).where((c.processing_samples > 0) | (c.wait_samples > 0))
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
        # Each row: queue, then the processing summary and sketch, then the wait summary and sketch.
        width = len(SUMMARY_FIELDS) + 1
        per_queue_durations: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in recent:
            per_queue_durations[row[0]].append(tuple(row[1:]))
        for queue, summaries in per_queue_durations.items():
            if queue in by_queue:
                by_queue[queue].processing_15m = _combine_summaries(
                    [s[:width] for s in summaries], keep_sketch=False
                )
                by_queue[queue].wait_15m = _combine_summaries(
                    [s[width:] for s in summaries], keep_sketch=False
                )
        overall = _combine_summaries([tuple(row[1 : 1 + width]) for row in recent], keep_sketch=False)
        return newest, [by_queue[name] for name in sorted(by_queue)], overall

    def plan(self, start: datetime, end: datetime, step: timedelta) -> tuple[str, timedelta]:
        """The resolution a query of [start, end) reads and the step it then uses.

        "hourly" when `start` is beyond the minute retention (the step is then rounded up to whole
        hours: rollups cannot be split) or when the step is whole hours anyway (rollups give the
        same numbers as their 60 minutes, without merging 60 sketches per hour); otherwise
        "minute". A range starting up to a minute beyond the retention still reads minute rows: "the
        last 24 hours" computed by a caller a few milliseconds earlier is a day of minutes, not 24
        hourly points. Raises ValueError for a step that is not a positive whole number of minutes,
        an empty range, or more than MAX_POINTS buckets.
        """
        start, end = _aware(start), _aware(end)
        if step <= timedelta(0) or step % MINUTE:
            raise ValueError(f"step must be a positive whole number of minutes, got {step}")
        if end <= start:
            raise ValueError("end must be after start")
        if start < _aware(self._clock()) - self.minute_retention - MINUTE:
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
        if resolution == "minute":
            async with self._engine.connect() as conn:
                if step == MINUTE:
                    rows = await _fetch_plain(conn, self._point_select(snapshots, queue, start, end))
                    return _row_points(rows, floor_time(start, MINUTE), end, MINUTE), resolution
                parts = await self._parts(conn, snapshots, queue, start, end)
            return _bucket(parts, start, end, step), resolution
        first = floor_time(start, HOUR)
        async with self._engine.connect() as conn:
            if step == HOUR:
                rows = await _fetch_plain(conn, self._point_select(rollups, queue, first, end))
                rolled_until = EPOCH + timedelta(seconds=rows[-1][0]) + HOUR if rows else first
            else:
                parts = await self._parts(conn, rollups, queue, first, end)
                rolled_until = parts[-1].time + HOUR if parts else first
            rolled_until = min(rolled_until, end)
            tail = await self._parts(conn, snapshots, queue, rolled_until, end) if rolled_until < end else []
        if step == HOUR:
            # One rollup per bucket: each is its own point, read without its sketches like a minute;
            # only the hours not rolled up yet merge minute rows.
            rolled = _row_points(rows, first, rolled_until, HOUR)
            return rolled + _bucket(tail, rolled_until, end, HOUR), resolution
        return _bucket(parts + tail, start, end, step), resolution

    def _point_select(self, table: Table, queue: str, start: datetime, end: datetime) -> Select[Any]:
        """The rows of `queue` in [start, end), in time order, as `_row_points` reads them.

        No sketch is read (each bucket holds one row, whose stored percentiles are the answer), times
        travel as epoch seconds and categories as JSON text: cheap to ship and to decode.
        """
        c, time_column = table.c, _time_column(table)
        columns = _point_columns(table)
        return (
            select(
                _epoch_seconds_sql(time_column, self._dialect),
                *columns[1:-1],
                cast(c.failures_by_category, Text),
                *(c[f"processing_{name}"] for name in SUMMARY_FIELDS),
                *(c[f"wait_{name}"] for name in SUMMARY_FIELDS),
                c.stalled_in_minute if table is snapshots else c.stalled_in_hour,
            )
            .where(c.queue == queue, time_column >= start, time_column < end)
            .order_by(time_column)
        )

    @staticmethod
    async def _parts(
        conn: AsyncConnection,
        table: Table,
        queue: str,
        start: datetime,
        end: datetime,
    ) -> list[_Part]:
        time_column = _time_column(table)
        stmt: Select[Any] = (
            select(*_part_columns(table))
            .where(table.c.queue == queue, time_column >= start, time_column < end)
            .order_by(time_column)
        )
        rows = (await conn.execute(stmt)).all()
        return [_unpack(row) for row in rows]
