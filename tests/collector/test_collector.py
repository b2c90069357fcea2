"""Collection cycles over real BullMQ workloads: exact counts, durations, races, outages, clock faults."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from tests.support.bull import delete_prefix, until
from tests.support.fakes import FakeClock
from tests.support.nodejs import start_produce
from workermon_collector.collector import Collector
from workermon_collector.follower import MINUTE_MS, EventFollower, first_cursor, minute_of
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_core.db import create_engine
from workermon_queues.backend import EventBatch
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.classify import FailureClassifier


def make_collector(
    redis: aioredis.Redis, prefix: str, engine: AsyncEngine, queues: list[str], clock: Any = time.time
) -> Collector:
    backend = BullMQBackend(redis, prefix="bull", queues=queues, discover=False)
    follower = EventFollower(backend, redis, prefix, FailureClassifier())
    return Collector(backend, follower, SnapshotStore(engine), redis, prefix, clock=clock)


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    q = Queue("wm-col-" + uuid.uuid4().hex[:8], {"connection": redis_url})
    yield q
    await q.obliterate({"force": True})
    await q.close()


async def _process(job: Job, token: str) -> Any:
    await asyncio.sleep(job.data.get("ms", 0) / 1000)
    if job.data.get("fail"):
        raise RuntimeError(job.data["fail"])
    return "ok"


async def _drain(queue: Queue, done: int, limit: float = 30) -> None:
    """Wait until `done` jobs have finished for good (completed or failed), by the stream's own count."""
    deadline = time.monotonic() + limit
    while True:
        counts = await queue.getJobCounts("completed", "failed", "waiting", "active", "delayed")
        if counts["waiting"] == 0 and counts["active"] == 0 and counts["delayed"] == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"workload did not finish: {counts}")
        await asyncio.sleep(0.05)


async def _work(queue: Queue, redis_url: str, completed: int, failed: int) -> None:
    """Jobs that complete and jobs that fail for good, processed until all have finished."""
    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 4})
    try:
        for i in range(completed + failed):
            await queue.add("job", {"fail": "HTTP 503"} if i >= completed else {}, {"attempts": 1})
        await _drain(queue, completed + failed)
    finally:
        await worker.close()


async def _collect_span(collector: Collector, queue: str, first_ms: int, last_ms: int) -> list[SnapshotRow]:
    rows = []
    for minute in range(minute_of(first_ms), minute_of(last_ms) + MINUTE_MS, MINUTE_MS):
        result = await collector.collect([queue], minute_ms=minute)
        assert not result.errors, result.errors
        rows += result.rows
    return rows


async def test_counts_equal_ground_truth(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    collector = make_collector(redis, prefix, engine, [queue.name])
    # Follow from before the workload, so no minute of it is only partly seen.
    await collector.follower.follow(queue.name, int(time.time() * 1000))
    started = int(time.time() * 1000)
    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 8})
    try:
        for i in range(20):
            await queue.add("kept", {"ms": 5 + i})
        await _drain(queue, 20)
        await queue.clean(0, 1000, "completed")  # a clean in between must not change the counts
        for _ in range(10):
            await queue.add("removed", {"ms": 5}, {"removeOnComplete": True})
        failures = [("Request timed out after 30000 ms", False)] * 3 + [
            ("HTTP 429 Too Many Requests", True)
        ] * 2
        for reason, remove in failures:
            await queue.add(
                "bad",
                {"fail": reason},
                {"attempts": 2, "backoff": {"type": "fixed", "delay": 20}, "removeOnFail": remove},
            )
        await _drain(queue, 35)
    finally:
        await worker.close()
    for _ in range(4):
        await queue.add("later", {}, {"delay": 3_600_000})
    for _ in range(3):
        await queue.add("waiting", {})
    finished = int(time.time() * 1000)

    rows = await _collect_span(collector, queue.name, started, finished)
    assert sum(r.completed_in_minute for r in rows) == 30
    assert sum(r.failed_in_minute for r in rows) == 5
    assert sum(r.retried_in_minute for r in rows) == 5
    categories: Counter[str] = Counter()
    for row in rows:
        categories.update(row.failures_by_category)
    assert dict(categories) == {"timeout": 3, "rate_limit": 2}
    assert not any(r.counts_approximate for r in rows)
    last = rows[-1]
    assert (last.waiting, last.active, last.delayed, last.completed, last.failed) == (3, 0, 4, 0, 3)
    assert last.oldest_waiting_ms is not None and last.oldest_waiting_ms >= 0
    assert last.completed_cumulative == 30 and last.failed_cumulative == 5
    # Written once: collecting the same minutes again writes nothing new.
    again = await collector.collect([queue.name], minute_ms=minute_of(started))
    assert again.written == [False]


async def test_a_queue_worked_before_it_is_first_seen_is_counted_exactly(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    # Created, worked and finished before any follower has seen the queue (between two discoveries).
    started = int(time.time() * 1000)
    await _work(queue, redis_url, completed=10, failed=10)
    finished = int(time.time() * 1000)

    collector = make_collector(redis, prefix, engine, [queue.name])
    rows = await _collect_span(collector, queue.name, started, finished)
    assert sum(r.completed_in_minute for r in rows) == 10
    assert sum(r.failed_in_minute for r in rows) == 10
    assert not any(r.counts_approximate for r in rows)


async def test_a_node_bullmq_queue_is_counted_exactly_from_its_first_minute(
    redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    name = "wm-node-" + uuid.uuid4().hex[:8]
    queue = Queue(name, {"connection": redis_url})
    started = int(time.time() * 1000)
    # Node BullMQ's own producer and worker: 3 jobs and a prioritized one complete, 2 fail for good.
    node = await start_produce(redis_url, "bull", name, "mixed")
    try:

        async def finished() -> bool:
            counts = await queue.getJobCounts("completed", "failed")
            return (counts["completed"], counts["failed"]) == (4, 2)

        await until(finished, what="the Node workload finished")
    finally:
        assert await node.stop() == 0
    try:
        collector = make_collector(redis, prefix, engine, [name])
        rows = await _collect_span(collector, name, started, int(time.time() * 1000))
        assert (sum(r.completed_in_minute for r in rows), sum(r.failed_in_minute for r in rows)) == (4, 2)
        assert not any(r.counts_approximate for r in rows)
    finally:
        await queue.obliterate({"force": True})
        await queue.close()


async def test_a_collector_restarted_mid_minute_loses_nothing(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    started = int(time.time() * 1000)
    first = make_collector(redis, prefix, engine, [queue.name])
    await _work(queue, redis_url, completed=4, failed=2)
    await first.follower.follow(queue.name, int(time.time() * 1000))
    del first  # the process ends mid-minute; its cursor and counters stay in Redis
    await _work(queue, redis_url, completed=3, failed=1)
    restarted = make_collector(redis, prefix, engine, [queue.name])
    rows = await _collect_span(restarted, queue.name, started, int(time.time() * 1000))
    assert (sum(r.completed_in_minute for r in rows), sum(r.failed_in_minute for r in rows)) == (7, 3)
    assert not any(r.counts_approximate for r in rows)


async def test_a_newly_seen_queue_gets_rows_for_its_earlier_minutes(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    started = int(time.time() * 1000)
    await _work(queue, redis_url, completed=5, failed=3)
    # The first cycle to see the queue runs two minutes after its work.
    clock = FakeClock(time.time() + 120)
    collector = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    result = await collector.collect()

    newest = int(result.minute.timestamp() * 1000)
    minutes = [int(r.minute.timestamp() * 1000) for r in result.rows]
    assert minutes == list(range(minute_of(started), newest + MINUTE_MS, MINUTE_MS)), "each minute a row"
    assert all(result.written)
    assert sum(r.completed_in_minute for r in result.rows) == 5
    assert sum(r.failed_in_minute for r in result.rows) == 3
    # Job counts of an earlier minute are today's: those rows say so; the cycle's own minute is exact.
    assert [r.counts_approximate for r in result.rows] == [True] * (len(result.rows) - 1) + [False]
    # Back-filled once: the next cycle writes its own minute only.
    clock.advance(60)
    assert len((await collector.collect()).rows) == 1


async def test_only_the_minute_of_a_trimmed_streams_oldest_entry_is_approximate(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    started = int(time.time() * 1000)
    await _work(queue, redis_url, completed=8, failed=0)
    finished = int(time.time() * 1000)
    # The stream capped at 3 entries (as `maxLenEvents: 3` would): older events are gone.
    events = f"bull:{queue.name}:events"
    await redis.hset(f"bull:{queue.name}:meta", "opts.maxLenEvents", 3)
    await redis.xtrim(events, maxlen=3, approximate=False)
    oldest_left = minute_of(int((await redis.xrange(events, count=1))[0][0].decode().split("-")[0]))

    collector = make_collector(redis, prefix, engine, [queue.name])
    rows = await _collect_span(collector, queue.name, started, finished)
    approximate = [int(r.minute.timestamp() * 1000) for r in rows if r.counts_approximate]
    assert approximate == [oldest_left]
    assert sum(r.completed_in_minute for r in rows) <= 3


def test_first_cursor_starts_before_the_oldest_entry_within_the_horizon() -> None:
    def batch(first: str | None, trimmed: bool, last: str | None = "900-0") -> EventBatch:
        return EventBatch(events=[], last_id=last, trimmed=trimmed, max_len=None, first_id=first)

    assert first_cursor(batch("500-3", trimmed=True), horizon_ms=0) == "500-2"
    assert first_cursor(batch("500-0", trimmed=True), horizon_ms=0) == f"499-{2**64 - 1}"
    assert first_cursor(batch("500-3", trimmed=False), horizon_ms=0) == "0-0"
    assert first_cursor(batch("500-3", trimmed=False), horizon_ms=100) == "100-0"
    assert first_cursor(batch("500-3", trimmed=True), horizon_ms=700) == "700-0"
    assert first_cursor(batch(None, trimmed=True), horizon_ms=0) == "900-0"
    assert first_cursor(batch(None, trimmed=False, last=None), horizon_ms=0) == "0-0"


async def test_durations_within_sketch_accuracy(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    collector = make_collector(redis, prefix, engine, [queue.name])
    started = int(time.time() * 1000)
    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 20})
    try:
        for i in range(200):
            await queue.add("timed", {"ms": (i * 7) % 60})
        await _drain(queue, 200)
    finally:
        await worker.close()
    finished = int(time.time() * 1000)
    rows = await _collect_span(collector, queue.name, started, finished)
    checked = 0
    for row in rows:
        truth = await collector.backend.finished_between(
            queue.name, int(row.minute.timestamp() * 1000), int(row.minute.timestamp() * 1000) + MINUTE_MS
        )
        values = sorted(j.finished_ms - j.started_ms for j in truth if j.finished_ms and j.started_ms)
        if not values:
            assert row.processing is None
            continue
        assert row.processing is not None and row.processing.samples == len(values)
        for q, estimate in (
            (0.5, row.processing.p50_ms),
            (0.95, row.processing.p95_ms),
            (0.99, row.processing.p99_ms),
        ):
            rank = q * (len(values) - 1)
            low, high = values[int(rank)], values[min(int(rank) + 1, len(values) - 1)]
            assert low * 0.99 - 1e-9 <= estimate <= high * 1.01 + 1e-9, (q, estimate, low, high)
        assert row.processing.avg_ms == pytest.approx(sum(values) / len(values), rel=0.01)
        checked += len(values)
    assert checked == 200


async def test_two_collectors_racing_write_each_minute_once(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    first = make_collector(redis, prefix, engine, [queue.name])
    second = make_collector(redis, prefix, engine, [queue.name])
    await first.follower.follow(queue.name, int(time.time() * 1000))
    started = int(time.time() * 1000)
    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 8})
    try:
        for _ in range(100):
            await queue.add("job", {"ms": 1})
        # Both follow the stream while it fills: every event must be counted once, not twice.
        for _ in range(10):
            await asyncio.gather(
                *(c.follower.follow(queue.name, int(time.time() * 1000)) for c in (first, second))
            )
            await asyncio.sleep(0.02)
        await _drain(queue, 100)
    finally:
        await worker.close()
    finished = int(time.time() * 1000)
    total = 0
    for minute in range(minute_of(started), minute_of(finished) + MINUTE_MS, MINUTE_MS):
        a, b = await asyncio.gather(
            first.collect([queue.name], minute_ms=minute), second.collect([queue.name], minute_ms=minute)
        )
        assert sorted(a.written + b.written) == [False, True]
        stored = await first.store.get(queue.name, a.minute)
        assert stored is not None
        total += stored.completed_in_minute
    assert total == 100


async def test_database_outage_keeps_rows_and_writes_them_once(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine
) -> None:
    clock = FakeClock(time.time())
    collector = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    working = collector.store
    down = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", poolclass=NullPool)
    collector.store = SnapshotStore(down)
    await queue.add("x", {})
    missed = []
    for _ in range(3):
        result = await collector.collect()
        assert result.database_error
        missed.append(result.minute)
        clock.advance(60)
    assert len(collector.pending) == 3
    collector.store = working
    assert await collector.flush_pending() == 3
    for minute in missed:
        row = await working.get(queue.name, minute)
        assert row is not None and row.minute == minute and row.waiting == 1
    assert not collector.pending
    assert (await collector.collect(minute_ms=int(missed[0].timestamp() * 1000))).written == [False]
    await down.dispose()


async def test_clock_stepping_back_writes_nothing_misdated(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine
) -> None:
    clock = FakeClock(time.time())
    collector = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    await queue.add("x", {})
    first = await collector.collect()
    assert first.written == [True]
    clock.advance(-300)
    stepped = await collector.collect()
    assert not stepped.rows and "clock is behind" in stepped.errors[0].message
    assert await collector.store.get(queue.name, stepped.minute) is None


async def test_vanished_queue_is_reported_not_fatal(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine
) -> None:
    gone = "wm-col-gone-" + uuid.uuid4().hex[:6]
    collector = make_collector(redis, prefix, engine, [queue.name, gone])
    await queue.add("x", {})
    result = await collector.collect()
    assert [r.queue for r in result.rows] == [queue.name]
    assert [(e.queue, e.message) for e in result.errors] == [(gone, "queue no longer exists")]


async def test_minutes_missed_while_down_are_back_filled(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    # The collector last ran five minutes ago, then was down (or its Redis was) until now.
    clock = FakeClock(time.time() - 5 * 60)
    collector = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    await queue.add("before", {})
    before = await collector.collect()
    assert before.written == [True]

    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 4})
    try:
        for i in range(12):
            await queue.add("during", {"fail": "HTTP 503"} if i % 4 == 0 else {})
        await _drain(queue, 13)
    finally:
        await worker.close()
    clock.now = time.time() + 60  # back up: the last full minute is the one the workload ended in
    back = await collector.collect()

    assert not back.errors, back.errors
    first = int(before.minute.timestamp() * 1000)
    minutes = [int(row.minute.timestamp() * 1000) for row in back.rows]
    newest = int(back.minute.timestamp() * 1000)
    assert minutes == list(range(first + MINUTE_MS, newest + MINUTE_MS, MINUTE_MS)), "no minute left out"
    assert all(back.written)
    # The job waiting at the last cycle and the twelve added while it was down, each counted once.
    assert sum(r.completed_in_minute for r in back.rows) == 10
    assert sum(r.failed_in_minute for r in back.rows) == 3
    # Job counts of a back-filled minute are today's, not that minute's: said so, never silently.
    assert all(r.counts_approximate for r in back.rows if r.minute != back.minute)
    totals = [r.completed_cumulative for r in back.rows]
    assert totals == sorted(totals) and totals[-1] == 10
    for row in back.rows:
        assert await collector.store.get(queue.name, row.minute) is not None
    # Nothing is back-filled twice: the next cycle only writes its own minute.
    clock.advance(60)
    assert len((await collector.collect()).rows) == 1


async def test_totals_that_start_again_mark_the_row(
    queue: Queue, redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    clock = FakeClock(time.time() - 60)
    collector = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    await collector.follower.follow(queue.name, int(time.time() * 1000))
    worker = Worker(queue.name, _process, {"connection": redis_url, "concurrency": 4})
    try:
        for _ in range(5):
            await queue.add("first", {})
        await _drain(queue, 5)
        clock.now = time.time()
        first = await collector.collect()
        assert first.rows[-1].completed_cumulative == 5 and not first.rows[-1].counters_reset
        # The Redis holding the running totals lost them (restarted without its data).
        await redis.delete(collector.follower._totals_key(queue.name))
        await queue.add("second", {})
        await _drain(queue, 6)
    finally:
        await worker.close()
    clock.now = time.time() + 60
    # A collector restarted meanwhile still knows the previous totals: from the newest stored row.
    restarted = make_collector(redis, prefix, engine, [queue.name], clock=clock)
    after = (await restarted.collect()).rows[-1]
    assert after.counters_reset
    assert after.completed_cumulative < 5 and after.completed_in_minute >= 0
    stored = await restarted.store.get(queue.name, after.minute)
    assert stored is not None and stored.counters_reset


def _stream_id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq or 0)


async def _run_to_completion(queue: Queue, redis_url: str, jobs: int) -> None:
    worker = Worker(queue.name, _process, {"connection": redis_url, "prefix": queue.prefix})
    try:
        for i in range(jobs):
            await queue.add("job", {"i": i})
        await _drain(queue, jobs)
    finally:
        await worker.close()


async def _collect_minutes(collector: Collector, first_ms: int, last_ms: int) -> list[Any]:
    return [
        await collector.collect(minute_ms=minute)
        for minute in range(minute_of(first_ms), minute_of(last_ms) + MINUTE_MS, MINUTE_MS)
    ]


async def test_a_queue_with_keys_of_another_type_costs_only_its_own_row(
    redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    bull = "wmcq-" + uuid.uuid4().hex[:10]
    good, waits, stream = (
        Queue(name, {"connection": redis_url, "prefix": bull}) for name in ("good", "wait", "evs")
    )
    backend = BullMQBackend(redis, prefix=bull, queues=["good", "wait", "evs"], discover=False)
    follower = EventFollower(backend, redis, prefix, FailureClassifier())
    collector = Collector(backend, follower, SnapshotStore(engine), redis, prefix)
    try:
        for q in (waits, stream):
            await q.add("j", {})
        await collector.follow_all()
        await redis.delete(f"{bull}:wait:wait")
        await redis.set(f"{bull}:wait:wait", "x")
        await redis.delete(f"{bull}:evs:events")
        await redis.set(f"{bull}:evs:events", "x")
        started = int(time.time() * 1000)
        await _run_to_completion(good, redis_url, 3)
        await collector.follow_all()  # between cycles too: the broken stream must not stop the others
        results = await _collect_minutes(collector, started, int(time.time() * 1000))
    finally:
        for q in (good, waits, stream):
            await q.close()
        await delete_prefix(redis, bull)
    assert sum(r.completed_in_minute for c in results for r in c.rows if r.queue == "good") == 3
    for cycle in results:
        assert [r.queue for r in cycle.rows] == ["good"]
        assert sorted((e.queue, e.message) for e in cycle.errors) == [
            ("evs", f"{bull}:evs:events is a string, expected a stream"),
            ("wait", f"{bull}:wait:wait is a string, expected a list"),
        ]
    status = await collector.status()
    assert status is not None and status["names"] == ["good"] and len(status["errors"]) == 2


async def test_entries_of_the_event_stream_that_are_not_events_are_skipped_and_counted(
    redis: aioredis.Redis, prefix: str, engine: AsyncEngine, redis_url: str
) -> None:
    bull = "wmcq-" + uuid.uuid4().hex[:10]
    queue = Queue("q", {"connection": redis_url, "prefix": bull})
    backend = BullMQBackend(redis, prefix=bull, queues=["q"], discover=False)
    follower = EventFollower(backend, redis, prefix, FailureClassifier())
    collector = Collector(backend, follower, SnapshotStore(engine), redis, prefix)
    stream = f"{bull}:q:events"
    try:
        await queue.add("first", {})
        started = int(time.time() * 1000)
        await collector.follow_all()
        garbage = [
            await redis.xadd(stream, {"event": "completed"}),  # no jobId
            await redis.xadd(stream, {"jobId": "1", "returnvalue": "x"}),  # no event
            await redis.xadd(stream, {"event": "failed", "jobId": ""}),
        ]
        # Fields that are not numbers where numbers belong are still events (nothing counted here).
        await redis.xadd(stream, {"event": "retries-exhausted", "jobId": "1", "attemptsMade": "abc"})
        await redis.xadd(stream, {"event": "delayed", "jobId": "1", "delay": "soon"})
        await collector.follow_all()
        # The cursor moved past entries that were all garbage (else they would be read again forever).
        cursor = (await redis.get(follower._cursor_key("q"))) or b"0-0"
        assert _stream_id(cursor) > _stream_id(garbage[-1])
        await _run_to_completion(queue, redis_url, 4)
        await redis.xadd(stream, {"event": "completed"})  # and one more after real events
        results = await _collect_minutes(collector, started, int(time.time() * 1000))
    finally:
        await queue.close()
        await delete_prefix(redis, bull)
    rows = [r for c in results for r in c.rows]
    assert sum(r.completed_in_minute for r in rows) == 5  # "first" and the four run here
    assert sum(r.failed_in_minute for r in rows) == 0
    assert sum(c.skipped_events.get("q", 0) for c in results) == 4
    assert all(not c.errors for c in results)
