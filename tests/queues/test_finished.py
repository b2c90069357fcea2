"""Jobs finished in a window, from BullMQ's completed/failed sets (scored by finishedOn)."""

from __future__ import annotations

import redis.asyncio as aioredis
from bullmq import Job

from tests.support.bull import Bull, until
from workermon_queues.bullmq import BullMQBackend


async def _process(job: Job, token: str) -> str:
    if job.name == "bad":
        raise RuntimeError("nope")
    return "ok"


async def test_finished_between(bull: Bull, backend: BullMQBackend, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    names = ["ok", "bad", "ok", "ok", "bad"]
    for name in names:
        await q.add(name, {})
    await q.add("gone", {}, {"removeOnComplete": True})
    bull.worker("work", _process)

    async def finished() -> bool:
        counts = await q.getJobCounts("completed", "failed", "wait", "active")
        return bool(
            counts["completed"] == 3 and counts["failed"] == 2 and not counts["wait"] + counts["active"]
        )

    await until(finished, what="jobs finished")

    jobs = await backend.finished_between("work", 0, 2**53)
    assert sorted((j.job_id, j.state) for j in jobs) == [
        ("1", "completed"),
        ("2", "failed"),
        ("3", "completed"),
        ("4", "completed"),
        ("5", "failed"),
    ]
    assert [j.finished_ms for j in jobs] == sorted(j.finished_ms or 0 for j in jobs)
    for job in jobs:
        fields = await redis.hmget(backend.key("work", job.job_id), "timestamp", "processedOn", "finishedOn")
        assert (job.enqueued_ms, job.started_ms, job.finished_ms) == tuple(int(v or 0) for v in fields)
        score = await redis.zscore(backend.key("work", job.state), job.job_id)
        assert job.finished_ms == score
        assert job.enqueued_ms <= (job.started_ms or 0) <= (job.finished_ms or 0)
        assert job.attempts_made == 1

    # Half-open windows: a job finishing exactly at `end` belongs to the next one.
    middle = jobs[2]
    assert middle.finished_ms is not None
    at = await backend.finished_between("work", middle.finished_ms, middle.finished_ms + 1)
    assert middle.job_id in {j.job_id for j in at}
    before = await backend.finished_between("work", 0, middle.finished_ms)
    assert middle.job_id not in {j.job_id for j in before}
    assert all((j.finished_ms or 0) < middle.finished_ms for j in before)

    assert [j.job_id for j in await backend.finished_between("work", 0, 2**53, limit=2)] == [
        j.job_id for j in jobs[:2]
    ]
    assert await backend.finished_between("work", 10, 10) == []
    assert await backend.finished_between("missing", 0, 2**53) == []


async def test_jobs_removed_between_the_two_reads_are_skipped(
    backend: BullMQBackend, redis: aioredis.Redis
) -> None:
    base = f"{backend.prefix}:q:"
    await redis.zadd(base + "completed", {"1": 1_000, "2": 2_000})
    await redis.hset(base + "1", mapping={"timestamp": 500, "processedOn": 900, "finishedOn": 1_000})
    # Job 2's hash is gone (removed by keep-count retention in the meantime).
    jobs = await backend.finished_between("q", 0, 10_000)
    assert [(j.job_id, j.enqueued_ms, j.started_ms, j.finished_ms) for j in jobs] == [("1", 500, 900, 1_000)]


async def test_jobs_stored_badly_cost_only_themselves(backend: BullMQBackend, redis: aioredis.Redis) -> None:
    base = f"{backend.prefix}:q:"
    await redis.zadd(base + "completed", {"1": 1_000, "2": 2_000, "3": 3_000, "4": 4_000})
    await redis.hset(base + "1", mapping={"timestamp": 500, "processedOn": 900, "finishedOn": 1_000})
    await redis.hset(base + "2", mapping={"timestamp": "abc", "processedOn": 1_900, "finishedOn": 2_000})
    await redis.set(base + "3", "not a hash")
    await redis.hset(base + "4", mapping={"timestamp": 3_500, "processedOn": "", "finishedOn": "1e999"})
    await redis.set(f"{backend.prefix}:other:completed", "not a sorted set")
    found = await backend.finished_between_many(["q", "other"], 0, 10_000)
    assert [(j.job_id, j.enqueued_ms, j.started_ms, j.finished_ms) for j in found["q"]] == [
        ("1", 500, 900, 1_000),
        ("4", 3_500, None, 4_000),  # finishedOn unreadable: the set's score says when
    ]
    assert found["other"] == []
