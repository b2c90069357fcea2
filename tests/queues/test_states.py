"""Queue states against a real bullmq workload: every count, the paused flag and the oldest waiting job."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from bullmq import FlowProducer, Job

from tests.support.bull import Bull, CountingRedis, until
from workermon_queues.backend import QueueState
from workermon_queues.bullmq import BullMQBackend


async def _timestamp(redis: aioredis.Redis, prefix: str, queue: str, job_id: str) -> int:
    value = await redis.hget(f"{prefix}:{queue}:{job_id}", "timestamp")
    assert value is not None
    return int(value)


async def test_states_match_a_real_workload(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    main = bull.queue("main")

    # Two completed and two failed jobs.
    async def finish(job: Job, token: str) -> str:
        if job.name == "bad":
            raise RuntimeError("boom")
        return "ok"

    for name in ("ok", "bad", "ok", "bad"):
        await main.add(name, {})
    first = bull.worker("main", finish)

    async def finished() -> bool:
        counts = await main.getJobCounts("completed", "failed")
        return bool(counts["completed"] == 2 and counts["failed"] == 2)

    await until(finished, what="4 jobs finished")
    await first.close()

    # Two jobs held active by a worker whose both slots are busy, so it takes nothing else.
    release = asyncio.Event()

    async def hold(job: Job, token: str) -> str:
        await release.wait()
        return "held"

    await main.add("hold", {})
    await main.add("hold", {})
    holder = bull.worker("main", hold, concurrency=2)

    async def both_active() -> bool:
        return bool((await main.getJobCounts("active"))["active"] == 2)

    await until(both_active, what="2 active jobs")

    waiting = [await main.add("w", {"i": i}) for i in range(3)]
    for priority in (1, 5):
        await main.add("p", {}, {"priority": priority})
    for _ in range(2):
        await main.add("d", {}, {"delay": 60_000})
    flow = FlowProducer(bull.opts)
    try:
        await flow.add(
            {"name": "parent", "queueName": "main", "children": [{"name": "c", "queueName": "side"}]}
        )
    finally:
        await flow.close()

    paused = bull.queue("stopped")
    await paused.pause()
    for _ in range(2):
        await paused.add("j", {})

    now = int(time.time() * 1000) + 5_000
    states = await backend.states(["main", "side", "stopped", "missing"], now)
    oldest_main = await _timestamp(redis, bull.prefix, "main", waiting[0].id)
    assert states["main"] == QueueState(
        name="main",
        waiting=3,
        active=2,
        delayed=2,
        prioritized=2,
        waiting_children=1,
        completed=2,
        failed=2,
        paused=False,
        oldest_waiting_ms=now - oldest_main,
        exists=True,
    )
    reference = await main.getJobCounts(
        "wait", "active", "delayed", "prioritized", "waiting-children", "completed", "failed"
    )
    assert reference == {
        "wait": 3,
        "active": 2,
        "delayed": 2,
        "prioritized": 2,
        "waiting-children": 1,
        "completed": 2,
        "failed": 2,
    }
    assert (states["side"].waiting, states["side"].exists) == (1, True)
    assert (states["stopped"].waiting, states["stopped"].paused) == (2, True)
    assert states["missing"] == QueueState("missing", 0, 0, 0, 0, 0, 0, 0, False, None, False)

    release.set()

    async def drained() -> bool:
        return bool((await main.getJobCounts("active"))["active"] == 0)

    await until(drained, what="held jobs released")
    await holder.close()


async def test_oldest_waiting_considers_prioritized_jobs(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    queue = bull.queue("prio")
    first = await queue.add("p", {}, {"priority": 1})
    await asyncio.sleep(0.01)
    await queue.add("w", {})
    only = bull.queue("prio-only")
    head = await only.add("p", {}, {"priority": 2})
    await only.add("p", {}, {"priority": 9})

    now = int(time.time() * 1000) + 1_000
    states = await backend.states(["prio", "prio-only"], now)
    assert states["prio"].oldest_waiting_ms == now - await _timestamp(redis, bull.prefix, "prio", first.id)
    assert states["prio-only"].oldest_waiting_ms == now - await _timestamp(
        redis, bull.prefix, "prio-only", head.id
    )
    assert (states["prio"].waiting, states["prio"].prioritized) == (1, 1)


async def test_legacy_paused_list_counts_as_waiting(backend: BullMQBackend, redis: aioredis.Redis) -> None:
    # Before BullMQ 5 pausing renamed `wait` to `paused` and new jobs went there.
    base = f"{backend.prefix}:old:"
    await redis.hset(base + "meta", "paused", 1)
    await redis.lpush(base + "paused", "1", "2")
    await redis.hset(base + "1", mapping={"timestamp": 1_000, "name": "j", "data": "{}"})
    await redis.hset(base + "2", mapping={"timestamp": 2_000, "name": "j", "data": "{}"})
    state = (await backend.states(["old"], 10_000))["old"]
    assert (state.waiting, state.paused, state.oldest_waiting_ms, state.exists) == (2, True, 9_000, True)


async def test_states_of_many_queues_take_one_round_trip(bull: Bull, redis: aioredis.Redis) -> None:
    names = [f"q{i}" for i in range(300)]
    for name in names[:3]:
        await bull.queue(name).add("j", {})
    counting = CountingRedis(redis)
    backend = BullMQBackend(cast(Any, counting), prefix=bull.prefix)
    states = await backend.states(names, int(time.time() * 1000))
    # One script per queue, next-in-line timestamps included, in one pipeline.
    assert counting.pipelines == 1
    assert [s.name for s in states.values() if s.exists] == ["q0", "q1", "q2"]
    assert all(s.oldest_waiting_ms is not None for s in states.values() if s.exists)
    assert await backend.states([], 0) == {}


async def test_a_queue_with_foreign_keys_does_not_spoil_the_others(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    await bull.queue("fine").add("j", {})
    await redis.set(backend.key("broken", "wait"), "not a list")
    await redis.hset(backend.key("oddjob", "meta"), "opts.maxLenEvents", 10)
    await redis.lpush(backend.key("oddjob", "wait"), "7")
    await redis.set(backend.key("oddjob", "7"), "not a job hash")
    await bull.queue("events").add("j", {})
    await redis.delete(backend.key("events", "events"))
    await redis.set(backend.key("events", "events"), "not a stream")
    await bull.queue("many").add("j", {})
    await redis.delete(backend.key("many", "meta"))
    await redis.set(backend.key("many", "meta"), "not a hash")
    await redis.set(backend.key("many", "delayed"), "not a zset")
    states = await backend.states(["fine", "broken", "oddjob", "events", "many"], int(time.time() * 1000))
    assert sorted(states) == ["broken", "events", "fine", "many", "oddjob"]
    assert (states["fine"].waiting, states["fine"].exists, states["fine"].problem) == (1, True, None)
    assert (states["oddjob"].waiting, states["oddjob"].oldest_waiting_ms) == (1, None)
    assert states["oddjob"].problem is None  # a job hash of another type only hides that job's age
    broken = states["broken"]
    assert broken.problem == f"{backend.key('broken', 'wait')} is a string, expected a list"
    assert (broken.exists, broken.waiting, broken.oldest_waiting_ms) == (True, 0, None)
    assert states["events"].problem == f"{backend.key('events', 'events')} is a string, expected a stream"
    # Keys that could be read still count; every broken key is named once.
    many = states["many"]
    assert many.waiting == 1 and not many.paused
    assert many.problem == (
        f"{backend.key('many', 'delayed')} is a string, expected a sorted set; "
        f"{backend.key('many', 'meta')} is a string, expected a hash"
    )


@pytest.mark.parametrize("stored", ["abc", "", "1e999", "-5", "1e300", "NaN"])
async def test_a_head_job_whose_timestamp_is_not_a_time_has_no_age(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis, stored: str
) -> None:
    job = await bull.queue("q").add("j", {})
    await redis.hset(backend.key("q", job.id), "timestamp", stored)
    state = (await backend.states(["q"], int(time.time() * 1000)))["q"]
    assert (state.waiting, state.oldest_waiting_ms, state.problem) == (1, None, None)


async def test_a_head_job_stamped_far_in_the_future_has_no_age(
    bull: Bull, backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    now = int(time.time() * 1000)
    skewed, future = await bull.queue("q").add("j", {}), await bull.queue("later").add("j", {})
    await redis.hset(backend.key("q", skewed.id), "timestamp", now + 5_000)  # clock skew: age 0
    await redis.hset(backend.key("later", future.id), "timestamp", now + 3_600_000)
    states = await backend.states(["q", "later"], now)
    assert (states["q"].oldest_waiting_ms, states["later"].oldest_waiting_ms) == (0, None)
