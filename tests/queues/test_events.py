"""Event streams as real bullmq workers write them, and how `will_retry` / `trimmed` are derived."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job
from bullmq.custom_errors import UnrecoverableError

from tests.support.bull import Bull, delete_prefix, until
from workermon_core.redis_store import connect
from workermon_queues.backend import EventBatch, QueueEvent
from workermon_queues.bullmq import BullMQBackend, StreamEntry, build_events


async def _process(job: Job, token: str) -> str:
    if job.name == "fail-once" and job.attemptsMade == 0:
        raise RuntimeError("first attempt fails")
    if job.name == "fail":
        raise RuntimeError(f"boom {job.attemptsMade}")
    if job.name == "fatal":
        raise UnrecoverableError("fatal: bad input")
    return "done"


Plan = list[tuple[str, dict[str, Any]]]


async def _run(bull: Bull, backend: BullMQBackend, queue: str, jobs: Plan) -> None:
    """Add `jobs` (name, opts) to `queue`, process them with one worker until all have finished."""
    q = bull.queue(queue)
    for name, opts in jobs:
        await q.add(name, {}, opts)
    bull.worker(queue, _process)

    async def done() -> bool:
        batch = await backend.read_events(queue, "0-0", 10_000)
        return sum(e.kind in ("completed", "failed") for e in batch.events) >= len(jobs)

    await until(done, limit=30, what=f"{queue} finished")


def _shape(events: list[QueueEvent], job_id: str = "1") -> list[tuple[str, str, bool]]:
    return [(e.kind, e.prev, e.will_retry) for e in events if e.job_id == job_id]


@dataclass
class Scenarios:
    backend: BullMQBackend
    redis: aioredis.Redis
    events: dict[str, list[QueueEvent]]

    def __getitem__(self, queue: str) -> list[QueueEvent]:
        return self.events[queue]


@pytest.fixture(scope="module")
async def scenarios(redis_url: str) -> AsyncIterator[Scenarios]:
    """One queue per scenario, all run at once (once for the module); each queue's stream as events."""
    plan: dict[str, Plan] = {
        "done": [("ok", {})],
        "backoff": [("fail", {"attempts": 3, "backoff": {"type": "fixed", "delay": 50}})],
        "immediate": [("fail", {"attempts": 3})],
        "recovers": [("fail-once", {"attempts": 3, "backoff": 50})],
        "removed": [("ok", {"removeOnComplete": True}), ("fail", {"removeOnFail": True, "attempts": 2})],
        "fatal": [("fatal", {"attempts": 3})],
        "delayed": [("ok", {"delay": 50})],
    }
    redis = connect(redis_url)
    bull = Bull(redis_url, "wmq-" + uuid.uuid4().hex[:12])
    backend = BullMQBackend(redis, prefix=bull.prefix)
    try:
        await asyncio.gather(*(_run(bull, backend, queue, jobs) for queue, jobs in plan.items()))
        events = {queue: (await backend.read_events(queue, "0-0", 10_000)).events for queue in plan}
        yield Scenarios(backend, redis, events)
    finally:
        await bull.close()
        await delete_prefix(redis, bull.prefix)
        await redis.aclose()


async def test_completed_job(scenarios: Scenarios) -> None:
    events = scenarios["done"]
    assert _shape(events) == [
        ("added", "", False),
        ("waiting", "", False),
        ("active", "waiting", False),
        ("completed", "active", False),
    ]
    assert events[-1].kind == "drained"
    assert all(e.time_ms == int(e.event_id.split("-")[0]) for e in events)


async def test_retries_with_backoff_then_final_failure(scenarios: Scenarios) -> None:
    events = scenarios["backoff"]
    assert _shape(events) == [
        ("added", "", False),
        ("waiting", "", False),
        ("active", "waiting", False),
        ("delayed", "", True),
        ("waiting", "delayed", False),
        ("active", "waiting", False),
        ("delayed", "", True),
        ("waiting", "delayed", False),
        ("active", "waiting", False),
        ("failed", "active", False),
        ("retries-exhausted", "", False),
    ]
    failed = [e for e in events if e.final_failure]
    assert len(failed) == 1
    assert (failed[0].reason, failed[0].attempts_made) == ("boom 2", 3)
    assert sum(e.will_retry for e in events) == 2


async def test_immediate_retries(scenarios: Scenarios) -> None:
    events = scenarios["immediate"]
    retries = [e for e in events if e.will_retry]
    assert [(e.kind, e.prev) for e in retries] == [("waiting", "active"), ("waiting", "active")]
    assert [(e.reason, e.attempts_made) for e in events if e.final_failure] == [("boom 2", 3)]


async def test_retry_then_success(scenarios: Scenarios) -> None:
    events = scenarios["recovers"]
    assert sum(e.will_retry for e in events) == 1
    assert [e.kind for e in events if e.kind in ("completed", "failed")] == ["completed"]


async def test_removed_jobs_still_leave_their_events(scenarios: Scenarios) -> None:
    backend, redis = scenarios.backend, scenarios.redis
    events = scenarios["removed"]
    assert [e.kind for e in events if e.job_id == "1" and e.kind == "completed"] == ["completed"]
    assert [(e.kind, e.reason, e.attempts_made) for e in events if e.job_id == "2" and e.final_failure] == [
        ("failed", "boom 1", 2)
    ]
    assert [e.kind for e in events if e.will_retry] == ["waiting"]
    assert not await redis.exists(backend.key("removed", "1"), backend.key("removed", "2"))


async def test_unrecoverable_failure_is_final_without_retries(scenarios: Scenarios) -> None:
    events = scenarios["fatal"]
    assert [(e.kind, e.reason, e.attempts_made) for e in events if e.kind == "failed"] == [
        ("failed", "fatal: bad input", None)
    ]
    assert not any(e.will_retry for e in events)
    assert "retries-exhausted" not in {e.kind for e in events}


async def test_new_delayed_job_is_not_a_retry(scenarios: Scenarios) -> None:
    events = scenarios["delayed"]
    assert [(e.kind, e.will_retry) for e in events[:2]] == [("added", False), ("delayed", False)]
    assert not any(e.will_retry for e in events)


async def test_paging_one_event_at_a_time_gives_the_same_events(scenarios: Scenarios) -> None:
    backend = scenarios.backend
    for queue in ("backoff", "immediate", "removed", "delayed"):
        paged: list[QueueEvent] = []
        after = "0-0"
        while True:
            batch = await backend.read_events(queue, after, count=1)
            assert not batch.trimmed
            paged += batch.events
            if not batch.events:
                break
            assert batch.last_id == batch.events[-1].event_id
            after = batch.last_id
        assert paged == scenarios[queue], queue


async def test_start_at_the_end_and_missing_streams(bull: Bull, backend: BullMQBackend) -> None:
    q = bull.queue("tail")
    await q.add("j", {})
    await q.add("j", {})
    latest = await backend.latest_event_id("tail")
    assert latest is not None
    batch = await backend.read_events("tail", None)
    assert (batch.events, batch.last_id, batch.trimmed, batch.max_len) == ([], latest, False, 10_000)
    assert (await backend.read_events("tail", latest)).events == []
    await q.add("j", {})
    after = await backend.read_events("tail", latest)
    assert [e.kind for e in after.events] == ["added", "waiting"]
    assert after.last_id == await backend.latest_event_id("tail")

    assert await backend.latest_event_id("nothing") is None
    assert await backend.read_events("nothing", None) == backend_empty(None)
    assert await backend.read_events("nothing", "5") == backend_empty("5-0")
    with pytest.raises(ValueError):
        await backend.read_events("tail", "not-an-id")

    many = await backend.read_events_many({"tail": latest, "nothing": None, "other": "0-0"})
    assert [e.kind for e in many["tail"].events] == ["added", "waiting"]
    assert many["nothing"].last_id is None
    assert many["other"].events == []


def backend_empty(last_id: str | None) -> Any:
    from workermon_queues.backend import EventBatch

    return EventBatch(events=[], last_id=last_id, trimmed=False, max_len=None)


async def _redis_7(redis: aioredis.Redis) -> bool:
    info = await redis.info("server")
    return int(str(info["redis_version"]).split(".")[0]) >= 7


async def test_trimmed_by_a_small_max_len(bull: Bull, backend: BullMQBackend, redis: aioredis.Redis) -> None:
    # What Node's Queue does for `streams: {events: {maxLen: 10}}`: store the cap in the meta hash.
    await redis.hset(backend.key("small", "meta"), "opts.maxLenEvents", 10)
    q = bull.queue("small")
    await q.add("j", {})
    cursor = await backend.latest_event_id("small")
    assert cursor is not None
    for _ in range(300):
        await q.add("j", {})
    # Trimming is approximate (whole radix-tree nodes) but 600 entries are far past it.
    assert await redis.xlen(backend.key("small", "events")) < 600
    batch = await backend.read_events("small", cursor)
    assert batch.trimmed
    assert batch.max_len == 10
    assert batch.events and batch.last_id == batch.events[-1].event_id
    assert not (await backend.read_events("small", batch.last_id)).trimmed


async def test_trimmed_only_when_unread_entries_may_be_lost(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    # A cap of 2, as BullMQ would trim to; its approximate trimming leaves these 10 entries alone.
    await redis.hset(backend.key("exact", "meta"), "opts.maxLenEvents", 2)
    q = bull.queue("exact")
    for _ in range(5):
        await q.add("j", {})
    stream = backend.key("exact", "events")
    ids = [e.event_id for e in (await backend.read_events("exact", "0-0")).events]
    assert len(ids) == 10

    await redis.xtrim(stream, maxlen=9, approximate=False)  # drops ids[0], before our cursor
    assert not (await backend.read_events("exact", ids[2])).trimmed

    await redis.xtrim(stream, maxlen=2, approximate=False)  # drops ids[1..7]: 3..7 were unread
    lost = await backend.read_events("exact", ids[2])
    assert lost.trimmed
    assert [e.event_id for e in lost.events] == ids[8:]
    assert not (await backend.read_events("exact", lost.last_id)).trimmed

    # The cursor was the last entry dropped: nothing unread was lost, but the stream cannot tell.
    assert (await backend.read_events("exact", ids[7])).trimmed

    if await _redis_7(redis):
        # Emptied completely: entries-added tells that entries after the cursor existed.
        await redis.xtrim(stream, maxlen=0, approximate=False)
        emptied = await backend.read_events("exact", ids[8])
        assert (emptied.events, emptied.trimmed, emptied.last_id) == ([], True, ids[9])
        assert not (await backend.read_events("exact", ids[9])).trimmed


def _entries(*specs: tuple[str, dict[str, str]]) -> list[StreamEntry]:
    return [(f"{1000 + i}-0", fields) for i, (_, fields) in enumerate(specs)]


def test_stalled_recovery_is_not_a_retry_even_at_a_batch_edge() -> None:
    entries = _entries(
        ("", {"event": "active", "jobId": "7", "prev": "waiting"}),
        ("", {"event": "waiting", "jobId": "7", "prev": "active"}),
        ("", {"event": "stalled", "jobId": "7"}),
        ("", {"event": "waiting", "jobId": "8", "prev": "active"}),
    )
    whole = build_events(entries, None, 10)
    assert [e.will_retry for e in whole] == [False, False, False, True]
    # The `waiting` as the last event of a batch, `stalled` only seen as look-ahead.
    edge = build_events(entries[:3], "1000-0", 1)
    assert [(e.kind, e.will_retry) for e in edge] == [("waiting", False)]


def test_delayed_after_a_non_active_entry_is_not_a_retry() -> None:
    entries = _entries(
        ("", {"event": "added", "jobId": "1", "name": "j"}),
        ("", {"event": "delayed", "jobId": "1", "delay": "5000"}),
        ("", {"event": "delayed", "jobId": "1", "delay": "9000"}),  # changeDelay
        ("", {"event": "delayed", "jobId": "2", "delay": "9000"}),  # job 2 was active before the read
    )
    assert [e.will_retry for e in build_events(entries, None, 10)] == [False, False, False, True]
    # With the cursor on `added`, that entry is context: the next batch still sees the job was new.
    assert [e.will_retry for e in build_events(entries, "1000-0", 1)] == [False]


def test_entries_that_are_not_events_are_left_out() -> None:
    entries = _entries(
        ("", {"event": "completed"}),  # no job id
        ("", {"jobId": "1"}),  # no event name
        ("", {"event": "drained"}),  # a queue's event: needs no job id
        ("", {"event": "failed", "jobId": "2", "failedReason": "x"}),
        ("", {"event": "retries-exhausted", "jobId": "2", "attemptsMade": "many"}),
    )
    events = build_events(entries, None, 10)
    assert [(e.kind, e.job_id, e.attempts_made) for e in events] == [
        ("drained", "", None),
        ("failed", "2", None),
        ("retries-exhausted", "2", None),
    ]


async def test_garbage_and_a_stream_of_another_type_cost_only_their_queue(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    for name in ("good", "bad", "noisy"):
        await bull.queue(name).add("j", {})
    await redis.delete(backend.key("bad", "events"))
    await redis.set(backend.key("bad", "events"), "x")
    junk = await redis.xadd(backend.key("noisy", "events"), {"event": "completed"})
    many = await backend.read_events_many({"good": "0-0", "bad": "0-0", "noisy": "0-0"})
    assert [e.kind for e in many["good"].events] == ["added", "waiting"]
    assert many["good"].problem is None and many["good"].skipped == ()
    assert many["bad"] == EventBatch(
        events=[],
        last_id="0-0",
        trimmed=False,
        max_len=None,
        problem=f"{backend.key('bad', 'events')} is a string, expected a stream",
    )
    noisy = many["noisy"]
    assert [e.kind for e in noisy.events] == ["added", "waiting"]
    assert noisy.skipped == (junk.decode(),) and noisy.last_id == junk.decode() and noisy.consumed == 3
    assert (await backend.read_events("bad", None)).problem is not None
