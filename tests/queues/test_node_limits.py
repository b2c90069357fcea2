"""Rate limits, global concurrency, priorities, deduplication and stalled jobs, on queues that Node
BullMQ itself wrote and worked (tests/node/limits.mjs), read as the board and job pages read them."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from tests.support.bull import Bull, until
from tests.support.nodejs import NodeProcess, start_produce
from workermon_queues import BullMQJobs
from workermon_queues.bullmq.limits import LimitReader
from workermon_queues.errors import NotFound

Start = Callable[[str, str], Awaitable[NodeProcess]]


# BullMQ 6, and BullMQ 5 (npm alias `bullmq5`): each queue is written by the version under test.
@pytest.fixture(params=["bullmq", "bullmq5"])
async def node(request: pytest.FixtureRequest, redis_url: str, bull: Bull) -> AsyncIterator[Start]:
    started: list[NodeProcess] = []
    package: str = request.param

    async def start(queue: str, mode: str) -> NodeProcess:
        process = await start_produce(redis_url, bull.prefix, queue, mode, package, script="limits.mjs")
        started.append(process)
        # Node BullMQ records its version in the meta hash: the layout read is the one under test.
        expected = "bullmq:5." if package == "bullmq5" else "bullmq:6."
        assert process.ready["version"] is None or process.ready["version"].startswith(expected)
        return process

    try:
        yield start
    finally:
        for process in started:
            await process.stop()


async def test_a_rate_limit_reached_by_a_node_worker(node: Start, redis: aioredis.Redis, bull: Bull) -> None:
    ready = (await node("rated", "ratelimit")).ready
    limits = LimitReader(redis, bull.prefix)

    async def two_done() -> bool:
        return await redis.zcard(f"{bull.prefix}:rated:completed") == 2

    await until(two_done, what="the Node worker running 2 jobs, its limit for the minute")
    rate = (await limits.limits(["rated"]))["rated"].rate_limit
    assert rate is not None
    assert rate.resets_in_ms is not None and 0 < rate.resets_in_ms <= 60_000
    assert (rate.window_count, rate.manual) == (2, False)
    if ready["ids"]["global"]:
        # setGlobalRateLimit: the limit is in the meta hash, so "limited" is known exactly.
        assert (rate.limited, rate.max, rate.duration_ms) == (True, 2, 60_000)
    else:
        # A BullMQ 5 without it: the worker's own limiter, never stored; only its window shows.
        assert (rate.limited, rate.max, rate.duration_ms) == (False, None, None)
    assert await redis.llen(f"{bull.prefix}:rated:wait") == 3


async def test_a_manual_rate_limit_and_a_queue_without_limits(redis: aioredis.Redis, bull: Bull) -> None:
    limits = LimitReader(redis, bull.prefix)
    await bull.queue("plain").add("x", {})
    assert (await limits.limits(["plain"]))["plain"].rate_limit is None
    # What `queue.rateLimit(ms)` writes: the count at JavaScript's largest safe integer.
    await redis.set(f"{bull.prefix}:plain:limiter", 2**53 - 1, px=30_000)
    rate = (await limits.limits(["plain"]))["plain"].rate_limit
    assert rate is not None and rate.limited and rate.manual and rate.max is None


async def test_global_concurrency_maxed_by_a_node_worker(
    node: Start, redis: aioredis.Redis, bull: Bull
) -> None:
    await node("capped", "concurrency")
    limits = LimitReader(redis, bull.prefix)

    async def two_running() -> bool:
        return await redis.llen(f"{bull.prefix}:capped:active") == 2

    await until(two_running, what="two jobs running under global concurrency 2")
    concurrency = (await limits.limits(["capped"]))["capped"].concurrency
    assert concurrency is not None
    assert (concurrency.limit, concurrency.running, concurrency.maxed) == (2, 2, True)
    assert await redis.llen(f"{bull.prefix}:capped:wait") == 2


async def test_priorities_and_deduplication_written_by_node(
    node: Start, redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    ready = (await node("ranked", "priorities")).ready
    ids = ready["ids"]
    assert ready["version"]
    load = await LimitReader(redis, bull.prefix).load("ranked")
    assert load.priorities.levels == ((1, 3), (5, 2), (2_097_151, 1))
    assert not load.priorities.truncated

    # The second job with the same id was dropped in favour of the first.
    assert ids["dropped"] == ids["kept"]
    held, expires = await jobs.deduplicated_job("ranked", "user-42")
    assert held.id == ids["kept"] and held.deduplication_id == "user-42" and expires is None
    held, expires = await jobs.deduplicated_job("ranked", "burst")
    assert held.id == ids["ttl"] and expires is not None and 0 < expires <= 600_000
    page = await jobs.list_jobs("ranked", ["waiting"], 10, None)
    assert {j.id: j.deduplication_id for j in page.jobs} == {ids["kept"]: "user-42", ids["ttl"]: "burst"}
    with pytest.raises(NotFound) as missing:
        await jobs.deduplicated_job("ranked", "nobody")
    assert missing.value.reason == "DEDUPLICATION_ID_NOT_FOUND"


async def test_priorities_beyond_the_cap_are_reported_truncated(redis: aioredis.Redis, bull: Bull) -> None:
    queue = bull.queue("many")
    for priority in range(1, 53):
        await queue.add("p", {}, {"priority": priority})
    load = await LimitReader(redis, bull.prefix).load("many")
    assert len(load.priorities.levels) == 50 and load.priorities.truncated
    assert load.priorities.levels[0] == (1, 1) and load.priorities.levels[-1] == (50, 1)


async def test_a_job_whose_node_worker_was_killed_is_suspected_then_counted_stalled(
    node: Start, redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    stuck = await node("stalling", "stall")
    job_id = stuck.ready["ids"]["job"]
    os.kill(stuck.ready["pid"], signal.SIGKILL)
    await stuck.proc.wait()
    limits = LimitReader(redis, bull.prefix)

    async def lock_gone() -> bool:
        return not await redis.exists(f"{bull.prefix}:stalling:{job_id}:lock")

    await until(lock_gone, what="the killed worker's 1 s lock expiring")
    load = await limits.load("stalling")
    assert (load.stalled.candidates, load.stalled.examined) == (1, 1)
    page = await jobs.list_jobs("stalling", ["active"], 10, None)
    assert [(j.id, j.stalled_suspected, j.stalled_count) for j in page.jobs] == [(job_id, True, 0)]
    assert (await jobs.get_job("stalling", job_id, 100)).summary.stalled_suspected

    # A second worker's stalled check puts it back (stc 1, a `stalled` event) and completes it.
    await node("stalling", "recover")

    async def completed() -> bool:
        return await redis.zscore(f"{bull.prefix}:stalling:completed", job_id) is not None

    await until(completed, what="the stalled job recovered and completed")
    detail = await jobs.get_job("stalling", job_id, 100)
    assert detail.summary.stalled_count == 1 and not detail.summary.stalled_suspected
    events = await redis.xrange(f"{bull.prefix}:stalling:events")
    assert any(fields.get(b"event", fields.get("event")) in (b"stalled", "stalled") for _, fields in events)
