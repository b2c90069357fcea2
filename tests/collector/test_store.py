"""SnapshotStore on SQLite and PostgreSQL: writes, round trips, queries, rollups, retention."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import DateClock
from workermon_collector import sketches
from workermon_collector.models import rollups, snapshots
from workermon_collector.rows import DurationSummary, SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_collector.store.parts import HOUR, MINUTE, Point
from workermon_core.db import create_engine
from workermon_queues.counts import JobCounts

MakeRow = Callable[..., SnapshotRow]
QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


def summary_of(values: list[float]) -> DurationSummary | None:
    """The DurationSummary of raw durations, as the collector builds it."""
    sketch = sketches.new_sketch()
    for value in values:
        sketch.add(value)
    return sketches.summarize(sketch)


def true_quantile(values: list[float], q: float) -> float:
    """The sample a DDSketch's quantile q approximates: rank floor(q * (n - 1)) of the sorted values."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_within_1pct(summary: DurationSummary | None, values: list[float]) -> None:
    assert summary is not None
    for name, q in QUANTILES.items():
        expected = true_quantile(values, q)
        got = getattr(summary, name)
        assert abs(got - expected) <= 0.01 * expected + 1e-9, (name, got, expected)
    assert summary.samples == len(values)
    assert summary.avg_ms == pytest.approx(sum(values) / len(values), rel=1e-9)


async def count_rows(engine: AsyncEngine, table: Table = snapshots) -> int:
    async with engine.connect() as conn:
        return int((await conn.scalar(select(func.count()).select_from(table))) or 0)


def minutes_from(start: datetime, n: int) -> list[datetime]:
    return [start + i * MINUTE for i in range(n)]


# --- Writes ---------------------------------------------------------------------------------------


async def test_write_is_idempotent_and_reports_new_rows(
    store: SnapshotStore, engine: AsyncEngine, make_row: MakeRow, utc_clock: DateClock
) -> None:
    minute = utc_clock.now.replace(minute=0)
    rows = [make_row(q, minute) for q in ("a", "b", "c")]
    assert await store.write(rows) == [True, True, True]
    assert await store.write(rows) == [False, False, False]
    # Mixed: one old, one new, and a row repeated within the batch counts once.
    later = make_row("a", minute + MINUTE)
    assert await store.write([rows[0], later, later]) == [False, True, False]
    assert await store.write([]) == []
    assert await count_rows(engine) == 4
    # The first write wins: a second write with other values leaves the row alone.
    assert await store.write([make_row("a", minute, waiting=999)]) == [False]
    stored = await store.get("a", minute)
    assert stored is not None and stored.waiting == 3


async def test_two_writers_same_minutes_leave_one_row_each(
    store: SnapshotStore, engine: AsyncEngine, migrated_url: str, make_row: MakeRow, utc_clock: DateClock
) -> None:
    """Two collectors (separate engines and pools) write the same minutes at once."""
    other = SnapshotStore(create_engine(migrated_url))
    try:
        base = utc_clock.now.replace(minute=0)
        rows = [make_row(f"q{i}", m) for i in range(5) for m in minutes_from(base, 12)]
        rng = random.Random(7)
        wins = 0
        for chunk_start in range(0, len(rows), 6):
            chunk = rows[chunk_start : chunk_start + 6]
            shuffled = chunk[:]
            rng.shuffle(shuffled)
            first, second = await asyncio.gather(store.write(chunk), other.write(shuffled))
            # Every row was won by exactly one of the two writers.
            by_key = {(r.queue, r.minute): new for r, new in zip(shuffled, second, strict=True)}
            for row, new in zip(chunk, first, strict=True):
                assert new != by_key[(row.queue, row.minute)]
            wins += sum(first) + sum(second)
        assert wins == len(rows)
        assert await count_rows(engine) == len(rows)
    finally:
        await other.engine.dispose()


_WRITER_SCRIPT = """
import asyncio, sys, time
from datetime import UTC, datetime, timedelta
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_core.db import create_engine

async def main(url, start_at, reverse):
    engine = create_engine(url)
    store = SnapshotStore(engine)
    base = datetime(2031, 3, 4, 9, 0, tzinfo=UTC)
    rows = [
        SnapshotRow(queue=f"q{q}", minute=base + timedelta(minutes=m), waiting=0, active=0, delayed=0,
                    prioritized=0, waiting_children=0, completed=0, failed=0, paused=False,
                    completed_in_minute=m, failed_in_minute=0, retried_in_minute=0,
                    counts_approximate=False, completed_cumulative=0, failed_cumulative=0,
                    collected_at=base, collection_ms=1.0)
        for m in range(30) for q in range(4)
    ]
    if reverse:
        rows.reverse()
    while time.time() < start_at:
        await asyncio.sleep(0.005)
    won = 0
    for i in range(0, len(rows), 4):
        won += sum(await store.write(rows[i:i + 4]))
    await engine.dispose()
    print(won)

asyncio.run(main(sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"))
"""


async def test_two_processes_writing_the_same_minutes(migrated_url: str, engine: AsyncEngine) -> None:
    """Two processes (as two collector replicas would) write the same 120 rows; none fails, none doubles."""
    import sys
    import time

    start_at = time.time() + 2.0
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER_SCRIPT,
            migrated_url,
            str(start_at),
            reverse,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for reverse in ("0", "1")
    ]
    outputs = [await p.communicate() for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    assert sum(int(out) for out, _ in outputs) == 120
    assert await count_rows(engine) == 120


async def test_write_refuses_naive_or_unaligned_minutes(store: SnapshotStore, make_row: MakeRow) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.write([make_row("a", datetime(2031, 1, 1, 10, 0))])
    with pytest.raises(ValueError, match="second 0"):
        await store.write([make_row("a", datetime(2031, 1, 1, 10, 0, 30, tzinfo=UTC))])


# --- Reads ----------------------------------------------------------------------------------------


async def test_round_trip_of_every_field(store: SnapshotStore, make_row: MakeRow) -> None:
    plus_two = timezone(timedelta(hours=2))
    # Given in another zone: stored as the same instant, read back as UTC.
    minute = datetime(2031, 3, 4, 12, 15, tzinfo=plus_two)
    processing = summary_of([12.0, 15.5, 200.25, 3000.0, 0.0])
    wait = summary_of([1.0, 2.0, 3.5])
    row = make_row(
        "emails:prio{x}",
        minute,
        waiting=1,
        active=2,
        delayed=3,
        prioritized=4,
        waiting_children=5,
        completed=6_000_000_000,
        failed=7,
        paused=True,
        completed_in_minute=8,
        failed_in_minute=9,
        retried_in_minute=10,
        counts_approximate=True,
        completed_cumulative=11_000_000_000,
        failed_cumulative=12,
        collected_at=datetime(2031, 3, 4, 12, 16, 1, 123456, tzinfo=plus_two),
        collection_ms=13.25,
        processing=processing,
        wait=wait,
        duration_source="jobs",
        oldest_waiting_ms=14_000,
        online_workers=15,
        failures_by_category={"timeout": 3, "network": 1, "ünïcode": 2},
    )
    assert await store.write([row]) == [True]
    stored = await store.get("emails:prio{x}", minute)
    assert stored is not None
    assert stored.minute == datetime(2031, 3, 4, 10, 15, tzinfo=UTC)
    assert stored.minute.tzinfo is not None and stored.minute.utcoffset() == timedelta(0)
    assert stored.collected_at == datetime(2031, 3, 4, 10, 16, 1, 123456, tzinfo=UTC)
    assert stored.collected_at.utcoffset() == timedelta(0)
    assert stored == row  # aware datetimes compare by instant; every other field by value
    assert stored.processing == processing and stored.wait == wait
    assert stored.processing is not None
    assert sketches.deserialize(stored.processing.sketch).count == 5

    # Optional fields absent.
    bare = make_row("bare", minute)
    await store.write([bare])
    stored_bare = await store.get("bare", minute)
    assert stored_bare is not None
    assert stored_bare.processing is None and stored_bare.wait is None
    assert stored_bare.oldest_waiting_ms is None and stored_bare.online_workers is None
    assert stored_bare.failures_by_category == {} and stored_bare.duration_source == ""
    assert await store.get("bare", minute + MINUTE) is None


async def test_latest_and_queues(store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock) -> None:
    base = utc_clock.now.replace(minute=0)
    assert await store.latest("a") is None
    assert await store.queues() == []
    await store.write(
        [make_row("b", base), make_row("a", base + 2 * MINUTE, waiting=42), make_row("a", base)]
    )
    latest = await store.latest("a")
    assert latest is not None and latest.minute == base + 2 * MINUTE and latest.waiting == 42
    assert await store.queues() == ["a", "b"]


async def test_summarize_sums_a_day_an_hour_and_fifteen_minutes(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    assert await store.summarize() == (None, [], None)
    newest = utc_clock.now.replace(second=0, microsecond=0)
    fast, slow = [10.0] * 50, [100.0] * 50
    rows = [
        # Older than 24 h before the newest minute: outside every sum.
        make_row("a", newest - 24 * HOUR, completed_in_minute=1000, failed_in_minute=1000),
        make_row(
            "a",
            newest - 23 * HOUR,
            completed_in_minute=7,
            failed_in_minute=3,
            failures_by_category={"timeout": 3},
        ),
        make_row(
            "a",
            newest - 30 * MINUTE,
            completed_in_minute=5,
            failed_in_minute=2,
            failures_by_category={"network": 2},
            processing=summary_of(slow),
        ),
        make_row(
            "a",
            newest - 10 * MINUTE,
            completed_in_minute=4,
            failed_in_minute=1,
            failures_by_category={"network": 1},
            processing=summary_of(fast),
        ),
        make_row(
            "a", newest, completed_in_minute=2, failed_in_minute=0, waiting=9, processing=summary_of(slow)
        ),
        make_row("b", newest - 5 * MINUTE, completed_in_minute=1, failed_in_minute=0, waiting=3),
    ]
    await store.write(rows)
    minute, summaries, overall = await store.summarize()
    assert minute == newest
    a, b = summaries
    assert a.queue == "a" and a.latest is not None and a.latest.minute == newest and a.latest.waiting == 9
    assert (a.completed_24h, a.failed_24h, a.minutes_24h) == (18, 6, 4)
    assert a.failures_by_category_1h == {"network": 3}
    assert_within_1pct(a.processing_15m, fast + slow)
    assert b.latest is not None and b.latest.minute == newest - 5 * MINUTE
    assert (b.completed_24h, b.failed_24h, b.minutes_24h) == (1, 0, 1) and b.processing_15m is None
    assert_within_1pct(overall, fast + slow)
    _, only_b, _ = await store.summarize(["b", "missing"])
    assert [s.queue for s in only_b] == ["b"]


async def test_summarize_merges_fifteen_minutes_of_wait_time_apart_from_processing(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    newest = utc_clock.now.replace(second=0, microsecond=0)
    short, long = [5.0] * 40, [2000.0] * 10
    await store.write(
        [
            # Older than 15 minutes: in neither window.
            make_row("w", newest - 20 * MINUTE, wait=summary_of([99_999.0] * 5)),
            make_row("w", newest - 10 * MINUTE, processing=summary_of([10.0] * 40), wait=summary_of(short)),
            # Wait time without processing time: counted in the wait window only.
            make_row("w", newest, wait=summary_of(long)),
        ]
    )
    _, [summary], overall = await store.summarize()
    assert_within_1pct(summary.wait_15m, short + long)
    assert_within_1pct(summary.processing_15m, [10.0] * 40)
    assert_within_1pct(overall, [10.0] * 40)


# --- Queries --------------------------------------------------------------------------------------


async def test_query_one_minute_steps_with_gaps(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    start = utc_clock.now - 10 * MINUTE  # 10:20
    rows = [
        make_row("q", start + i * MINUTE, waiting=i, completed_in_minute=i, oldest_waiting_ms=i * 10)
        for i in (0, 1, 2, 5, 6, 9)
    ]
    rows.append(make_row("other", start, waiting=500))
    await store.write(rows)
    points, resolution = await store.query("q", start, utc_clock.now, MINUTE)
    assert resolution == "minute"
    assert [p.time for p in points] == minutes_from(start, 10)
    assert [p.has_data for p in points] == [i in (0, 1, 2, 5, 6, 9) for i in range(10)]
    assert points[3] == Point(time=start + 3 * MINUTE, has_data=False)
    assert [p.counts.waiting for p in points if p.counts] == [0, 1, 2, 5, 6, 9]
    assert [p.completed for p in points] == [0, 1, 2, 0, 0, 5, 6, 0, 0, 9]
    assert points[5].oldest_waiting_ms == 50
    # Nothing for an unknown queue: all gaps.
    empty, _ = await store.query("nope", start, utc_clock.now, MINUTE)
    assert len(empty) == 10 and not any(p.has_data for p in empty)


async def test_query_buckets_sum_last_max_and_merge(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    rng = random.Random(42)
    start = utc_clock.now.replace(minute=0)  # 10:00, aligned to 5-minute buckets
    raw_processing: dict[int, list[float]] = {}
    raw_wait: dict[int, list[float]] = {}
    rows = []
    for i in range(15):
        if i in (6, 7):
            continue  # a gap inside the second bucket
        if 10 <= i < 15:
            continue  # the third bucket is empty
        proc = [rng.lognormvariate(5, 1.3) for _ in range(rng.randint(20, 80))]
        wait = [rng.expovariate(1 / 300) for _ in range(rng.randint(5, 30))]
        raw_processing[i], raw_wait[i] = proc, wait
        rows.append(
            make_row(
                "q",
                start + i * MINUTE,
                waiting=100 + i,
                completed=1000 + i,
                paused=i == 9,
                online_workers=i,
                completed_in_minute=i,
                failed_in_minute=1,
                retried_in_minute=2,
                counts_approximate=i == 3,
                oldest_waiting_ms=None if i == 8 else (i * 7) % 31,
                processing=summary_of(proc),
                wait=summary_of(wait),
                failures_by_category={"timeout": 1, "network": i % 2} if i % 2 else {"timeout": 1},
            )
        )
    await store.write(rows)
    points, resolution = await store.query("q", start, start + 15 * MINUTE, 5 * MINUTE)
    assert resolution == "minute"
    assert [p.time for p in points] == [start, start + 5 * MINUTE, start + 10 * MINUTE]
    first, second, third = points
    assert third == Point(time=start + 10 * MINUTE, has_data=False)

    assert first.has_data and second.has_data
    assert first.completed == sum(range(5)) and second.completed == 5 + 8 + 9
    assert first.failed == 5 and second.failed == 3
    assert first.retried == 10 and second.retried == 6
    assert first.approximate and not second.approximate
    # Counts, paused and workers come from the bucket's last snapshot.
    assert first.counts == JobCounts(104, 2, 1, 0, 0, 1004, 5)
    assert second.counts is not None and second.counts.waiting == 109 and second.paused
    assert not first.paused and first.online_workers == 4 and second.online_workers == 9
    assert first.oldest_waiting_ms == max((i * 7) % 31 for i in range(5))
    assert second.oldest_waiting_ms == max((i * 7) % 31 for i in (5, 9))
    assert first.failures_by_category == {"timeout": 5, "network": 2}
    assert second.failures_by_category == {"timeout": 3, "network": 2}
    # Percentiles of merged sketches within 1% of the true percentiles of the raw samples.
    assert_within_1pct(first.processing, [v for i in range(5) for v in raw_processing[i]])
    assert_within_1pct(first.wait, [v for i in range(5) for v in raw_wait[i]])
    assert_within_1pct(second.processing, [v for i in (5, 8, 9) for v in raw_processing[i]])

    # At one minute per bucket the stored percentiles are served as they are.
    minute_points, _ = await store.query("q", start, start + 5 * MINUTE, MINUTE)
    for i, point in enumerate(minute_points):
        stored = rows[i].processing
        assert stored is not None and point.processing is not None
        assert point.processing.p99_ms == stored.p99_ms and point.processing.samples == stored.samples


async def test_query_range_not_aligned_to_step(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    base = utc_clock.now.replace(minute=0)
    await store.write([make_row("q", base + i * MINUTE, completed_in_minute=1) for i in range(20)])
    # [10:03, 10:17) at 5 minutes: buckets 10:00 (from 10:03), 10:05, 10:10, 10:15 (to 10:17).
    points, _ = await store.query("q", base + 3 * MINUTE, base + 17 * MINUTE, 5 * MINUTE)
    assert [p.time for p in points] == [base + k * 5 * MINUTE for k in range(4)]
    assert [p.completed for p in points] == [2, 5, 5, 2]


async def test_query_rejects_bad_steps(store: SnapshotStore, utc_clock: DateClock) -> None:
    end = utc_clock.now
    with pytest.raises(ValueError, match="whole number of minutes"):
        await store.query("q", end - HOUR, end, timedelta(seconds=90))
    with pytest.raises(ValueError, match="whole number of minutes"):
        await store.query("q", end - HOUR, end, timedelta(0))
    with pytest.raises(ValueError, match="at most 1500"):
        await store.query("q", end - timedelta(hours=23), end + timedelta(hours=3), MINUTE)
    with pytest.raises(ValueError, match="after start"):
        await store.query("q", end, end, MINUTE)
    # Exactly 1,500 points is fine.
    store.minute_retention = timedelta(hours=48)
    points, _ = await store.query("q", end - 1500 * MINUTE, end, MINUTE)
    assert len(points) == 1500


async def test_query_hourly_uses_rollups_and_recent_minutes(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    rng = random.Random(3)
    base = datetime(2031, 3, 4, 6, 0, tzinfo=UTC)
    raw: dict[datetime, list[float]] = {}
    rows = []
    for minute in minutes_from(base, 4 * 60 + 30):  # 06:00 to 10:30
        values = [rng.lognormvariate(4, 1) for _ in range(10)]
        raw[minute] = values
        rows.append(make_row("q", minute, completed_in_minute=1, processing=summary_of(values)))
    await store.write(rows)
    utc_clock.now = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)
    assert await store.rollup(utc_clock.now) == 4  # 06, 07, 08 and 09; 10:00 is not complete

    # Within the minute retention a whole-hour step reads rollups too (same numbers, no merging),
    # and the minutes of the current hour; buckets hold whole hours, also at the range's edges.
    recent, resolution = await store.query("q", base + 20 * MINUTE, utc_clock.now, HOUR)
    assert resolution == "hourly"
    assert [p.time for p in recent] == [base + k * HOUR for k in range(5)]
    assert [p.completed for p in recent] == [60, 60, 60, 60, 30]
    for point in recent:
        hour_values = [v for m, vs in raw.items() if point.time <= m < point.time + HOUR for v in vs]
        assert_within_1pct(point.processing, hour_values)

    # Two days later the range starts beyond the minute retention: hourly rollups, whole-hour steps.
    utc_clock.now = datetime(2031, 3, 6, 10, 30, tzinfo=UTC)
    start, end = datetime(2031, 3, 4, 5, 0, tzinfo=UTC), datetime(2031, 3, 4, 11, 0, tzinfo=UTC)
    assert store.plan(start, end, 7 * MINUTE) == ("hourly", HOUR)
    assert store.plan(start, end, 90 * MINUTE) == ("hourly", 2 * HOUR)
    points, resolution = await store.query("q", start, end, 7 * MINUTE)
    assert resolution == "hourly"
    assert [p.time for p in points] == [start + k * HOUR for k in range(6)]
    assert [p.has_data for p in points] == [False, True, True, True, True, True]
    # 10:00 has no rollup yet: its 30 minute rows stand in for it.
    assert [p.completed for p in points] == [0, 60, 60, 60, 60, 30]
    for point in points[1:]:
        hour_values = [v for m, vs in raw.items() if point.time <= m < point.time + HOUR for v in vs]
        assert_within_1pct(point.processing, hour_values)

    two_hours, _ = await store.query("q", start, end, 2 * HOUR)
    assert [p.completed for p in two_hours] == [0, 120, 120, 30]  # buckets 04-06, 06-08, 08-10, 10-12
    assert_within_1pct(two_hours[2].processing, [v for m, vs in raw.items() if 8 <= m.hour < 10 for v in vs])


def test_plan_reads_a_day_of_minutes_and_longer_ranges_from_rollups(
    store: SnapshotStore, utc_clock: DateClock
) -> None:
    # What GetQueueTrend asks for each range of the UI, its `now` a little behind the collector's.
    asked_at = utc_clock.now - timedelta(milliseconds=40)
    # The default step: the smallest whole-minute step giving at most 1,500 points.
    plans = {
        hours: store.plan(
            asked_at - timedelta(hours=hours), asked_at, -(-hours * HOUR // (1500 * MINUTE)) * MINUTE
        )
        for hours in (1, 6, 24, 7 * 24, 30 * 24)
    }
    assert plans == {
        1: ("minute", MINUTE),
        6: ("minute", MINUTE),
        24: ("minute", MINUTE),
        7 * 24: ("hourly", HOUR),
        30 * 24: ("hourly", HOUR),
    }
    # Past the minute of grace the minutes may be gone: rollups.
    assert store.plan(utc_clock.now - 24 * HOUR - 2 * MINUTE, utc_clock.now, MINUTE) == ("hourly", HOUR)


async def test_query_whole_hours_gives_each_rollup_field_as_its_point(
    store: SnapshotStore, make_row: MakeRow, utc_clock: DateClock
) -> None:
    # A 1-hour step over rollups turns each rollup into its point straight from its columns (no
    # sketch read or merged): every field must still say what the hour's minutes said.
    rng = random.Random(5)
    base = datetime(2031, 3, 4, 6, 0, tzinfo=UTC)
    raw: dict[datetime, tuple[list[float], list[float]]] = {}
    rows = []
    for i, minute in enumerate(minutes_from(base, 120)):
        processing = [rng.lognormvariate(4, 1) for _ in range(8)]
        wait = [rng.lognormvariate(2, 1) for _ in range(5)]
        raw[minute] = (processing, wait)
        rows.append(
            make_row(
                "q",
                minute,
                waiting=i,
                paused=i == 59,
                completed_in_minute=i,
                failed_in_minute=i % 3,
                retried_in_minute=1,
                counts_approximate=i == 10,
                processing=summary_of(processing),
                wait=summary_of(wait),
                oldest_waiting_ms=1000 + i,
                online_workers=i % 7,
                failures_by_category={"timeout": 1} if i % 2 else {"timeout": 2, "crash": 1},
            )
        )
    await store.write(rows)
    assert await store.rollup(base + 2 * HOUR) == 2
    utc_clock.now = base + timedelta(days=3)

    points, resolution = await store.query("q", base - HOUR, base + 2 * HOUR, HOUR)
    assert resolution == "hourly"
    assert [p.time for p in points] == [base - HOUR, base, base + HOUR]
    assert points[0] == Point(time=base - HOUR, has_data=False)
    for hour, point in enumerate(points[1:]):
        minutes = range(60 * hour, 60 * hour + 60)
        assert point.has_data
        assert point.counts == JobCounts(60 * hour + 59, 2, 1, 0, 0, 100, 5)
        assert point.paused == (hour == 0)
        assert (point.completed, point.failed) == (sum(minutes), sum(i % 3 for i in minutes))
        assert point.retried == 60
        assert point.approximate == (hour == 0)
        assert point.oldest_waiting_ms == 1000 + 60 * hour + 59
        assert point.online_workers == (60 * hour + 59) % 7
        assert point.failures_by_category == {"timeout": 90, "crash": 30}
        in_hour = [raw[base + i * MINUTE] for i in minutes]
        assert_within_1pct(point.processing, [v for p, _ in in_hour for v in p])
        assert_within_1pct(point.wait, [v for _, w in in_hour for v in w])
        assert point.processing is not None and point.processing.sketch == b""


# --- Rollups --------------------------------------------------------------------------------------


async def test_rollup_is_idempotent_and_recomputes_late_minutes(
    store: SnapshotStore, engine: AsyncEngine, make_row: MakeRow, utc_clock: DateClock
) -> None:
    rng = random.Random(11)
    hour = datetime(2031, 3, 4, 8, 0, tzinfo=UTC)
    raw: dict[int, list[float]] = {}
    rows = []
    for i in range(60):
        if i == 30:
            continue  # this minute arrives late
        raw[i] = [rng.lognormvariate(5, 1) for _ in range(rng.randint(1, 40))]
        rows.append(
            make_row(
                "q",
                hour + i * MINUTE,
                waiting=i,
                completed_cumulative=1000 + i,
                completed_in_minute=2,
                failed_in_minute=1,
                retried_in_minute=i % 2,
                stalled_in_minute=1 if i % 10 == 0 else 0,
                counts_approximate=i == 5,
                oldest_waiting_ms=1000 - abs(i - 20),
                online_workers=i,
                processing=summary_of(raw[i]),
                failures_by_category={"timeout": 1},
            )
        )
    rows.append(make_row("q", hour + HOUR, completed_in_minute=99))  # 09:00, an incomplete hour
    rows.append(make_row("r", hour - HOUR))  # another queue, an hour earlier
    await store.write(rows)

    now = hour + HOUR + 5 * MINUTE  # 09:05
    assert await store.rollup(now) == 2  # q 08:00 and r 07:00
    assert await store.rollup(now) == 0  # nothing new: nothing rewritten
    assert await count_rows(engine, rollups) == 2

    async def rollup_row() -> dict[str, Any]:
        async with engine.connect() as conn:
            result = await conn.execute(select(rollups).where(rollups.c.queue == "q"))
            return dict(result.one()._mapping)

    first = await rollup_row()
    assert first["hour"] == hour and first["minutes_covered"] == 59
    assert first["completed_in_hour"] == 118 and first["failed_in_hour"] == 59
    assert first["retried_in_hour"] == 30
    assert first["stalled_in_hour"] == 5  # minutes 0, 10, 20, 40, 50 (30 came late)
    assert first["waiting"] == 59 and first["completed_cumulative"] == 1059 and first["online_workers"] == 59
    assert first["oldest_waiting_ms"] == 1000 and first["approximate"] is True
    assert first["failures_by_category"] == {"timeout": 59}
    merged = sketches.deserialize(first["processing_sketch"])
    values = [v for vs in raw.values() for v in vs]
    assert merged.count == len(values)
    assert_within_1pct(
        DurationSummary(
            samples=first["processing_samples"],
            p50_ms=first["processing_p50_ms"],
            p95_ms=first["processing_p95_ms"],
            p99_ms=first["processing_p99_ms"],
            avg_ms=first["processing_avg_ms"],
            sketch=b"",
        ),
        values,
    )

    # The late minute arrives: the hour is recomputed, once.
    late = [rng.lognormvariate(5, 1) for _ in range(500)]
    await store.write([make_row("q", hour + 30 * MINUTE, completed_in_minute=7, processing=summary_of(late))])
    assert await store.rollup(now + MINUTE) == 1
    assert await store.rollup(now + 2 * MINUTE) == 0
    second = await rollup_row()
    assert second["minutes_covered"] == 60 and second["completed_in_hour"] == 125
    assert second["processing_samples"] == len(values) + 500
    assert second["id"] == first["id"]  # updated in place
    assert_within_1pct(
        DurationSummary(
            second["processing_samples"],
            second["processing_p50_ms"],
            second["processing_p95_ms"],
            second["processing_p99_ms"],
            second["processing_avg_ms"],
            b"",
        ),
        values + late,
    )


async def test_concurrent_rollups_agree(
    store: SnapshotStore, engine: AsyncEngine, migrated_url: str, make_row: MakeRow
) -> None:
    hour = datetime(2031, 3, 4, 8, 0, tzinfo=UTC)
    await store.write([make_row(f"q{k}", m) for k in range(5) for m in minutes_from(hour, 60)])
    other = SnapshotStore(create_engine(migrated_url))
    try:
        results = await asyncio.gather(store.rollup(hour + 2 * HOUR), other.rollup(hour + 2 * HOUR))
    finally:
        await other.engine.dispose()
    assert 5 <= sum(results) <= 10
    assert await count_rows(engine, rollups) == 5


# --- Retention ------------------------------------------------------------------------------------


async def test_prune_in_batches_leaves_the_right_rows(
    store: SnapshotStore, engine: AsyncEngine, make_row: MakeRow
) -> None:
    now = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
    # Minute rows from 06:00 to 11:59, for two queues.
    await store.write([make_row(q, m) for q in ("a", "b") for m in minutes_from(now - 6 * HOUR, 360)])
    assert await store.rollup(now) == 12

    # Keep 2 h of minutes: 06:00-09:59 goes (480 rows), in batches of 7. Keep 3 h of rollups.
    minutes, hours = await store.prune(now, timedelta(hours=2), timedelta(hours=3), batch=7)
    assert (minutes, hours) == (480, 6)
    async with engine.connect() as conn:
        oldest_minute = await conn.scalar(select(func.min(snapshots.c.minute)))
        oldest_hour = await conn.scalar(select(func.min(rollups.c.hour)))
    assert oldest_minute == now - 2 * HOUR
    assert oldest_hour == now - 3 * HOUR
    assert await count_rows(engine) == 240
    assert await count_rows(engine, rollups) == 6
    assert await store.prune(now, timedelta(hours=2), timedelta(hours=3), batch=7) == (0, 0)
    # Batches that divide the work exactly end cleanly too.
    assert await store.prune(now, timedelta(hours=1), timedelta(hours=3), batch=60) == (120, 0)


async def test_prune_rolls_up_before_dropping_minutes(
    store: SnapshotStore, engine: AsyncEngine, make_row: MakeRow
) -> None:
    now = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)
    await store.write([make_row("a", m, completed_in_minute=1) for m in minutes_from(now - 3 * HOUR, 120)])
    minutes, _ = await store.prune(now, timedelta(hours=1), timedelta(days=30))
    assert minutes == 120
    assert await count_rows(engine, rollups) == 2
    # Half-hour buckets read minute rows: gone. Whole hours read the rollups, which still hold them.
    points, resolution = await store.query("a", now - 3 * HOUR, now, 30 * MINUTE)
    assert resolution == "minute" and not any(p.has_data for p in points)
    points, resolution = await store.query("a", now - 3 * HOUR, now, HOUR)
    assert resolution == "hourly"
    assert [p.completed for p in points] == [60, 60, 0]
