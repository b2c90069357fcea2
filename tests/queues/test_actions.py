"""Queue and job actions on real BullMQ queues: exact counts, state checks, active jobs left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job

from tests.support.bull import Bull, Gate, until
from workermon_queues import BullMQJobs, JobIsActive
from workermon_queues.errors import FailedPrecondition, InvalidArgument, NotFound
from workermon_queues.replies import text


async def _process(job: Job, token: str) -> Any:
    if job.name.startswith("bad"):
        raise RuntimeError(f"ECONNREFUSED {job.name}")
    return job.name


def _ids(members: Any) -> list[str]:
    return [text(m) for m in members]


async def _counts(bull: Bull, name: str = "work") -> dict[str, int]:
    counts: dict[str, int] = await bull.queue(name).getJobCounts(
        "completed", "failed", "wait", "active", "delayed", "prioritized", "paused"
    )
    return counts


async def _settle(bull: Bull, **expected: int) -> None:
    async def reached() -> bool:
        counts = await _counts(bull)
        return all(counts[k] == v for k, v in expected.items())

    await until(reached, what=f"counts {expected}")


async def _failed_jobs(bull: Bull, n: int) -> None:
    q = bull.queue("work")
    for i in range(n):
        await q.add(f"bad-{i}", {"i": i}, {"attempts": 2})
    worker = bull.worker("work", _process)
    await _settle(bull, failed=n, wait=0, active=0)
    await worker.close()


async def test_pause_and_resume_say_whether_they_changed_anything(bull: Bull, jobs: BullMQJobs) -> None:
    q = bull.queue("work")
    await q.add("a", {})
    assert await jobs.pause("work") is True
    assert await q.isPaused()
    assert await jobs.pause("work") is False
    assert await jobs.resume("work") is True
    assert not await q.isPaused()
    assert await jobs.resume("work") is False
    # A paused queue keeps its jobs; a worker runs them only after resume.
    assert await jobs.pause("work")
    worker = bull.worker("work", _process)
    await q.add("b", {})
    await _settle(bull, wait=2)
    assert await jobs.resume("work")
    await _settle(bull, completed=2)
    await worker.close()


async def test_retry_failed_all_and_newest(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    await _failed_jobs(bull, 7)
    newest = _ids(await redis.zrevrange(f"{bull.prefix}:work:failed", 0, 2))
    assert await jobs.retry_failed("work", 3) == 3
    waiting = [text(m) for m in await redis.lrange(f"{bull.prefix}:work:wait", 0, -1)]
    assert sorted(waiting) == sorted(newest)
    assert (await _counts(bull))["failed"] == 4
    # The retried jobs keep their attempts made; their failure fields are cleared.
    fields = await redis.hmget(f"{bull.prefix}:work:{newest[0]}", "atm", "failedReason", "finishedOn")
    assert fields == [b"2", None, None]
    assert await jobs.retry_failed("work", 0) == 0
    assert await jobs.retry_failed("work", None) == 4
    assert await jobs.retry_failed("work", None) == 0
    counts = await _counts(bull)
    assert counts["failed"] == 0 and counts["wait"] == 7
    # They run again (and fail again: the processor still refuses them).
    worker = bull.worker("work", _process)
    await _settle(bull, failed=7, wait=0, active=0)
    await worker.close()
    assert await jobs.retry_failed("work", 100) == 7
    with pytest.raises(InvalidArgument):
        await jobs.retry_failed("work", -1)


async def test_retry_keeps_priorities(bull: Bull, jobs: BullMQJobs) -> None:
    q = bull.queue("work")
    await q.add("bad-prio", {}, {"priority": 3})
    worker = bull.worker("work", _process)
    await _settle(bull, failed=1, prioritized=0, active=0)
    await worker.close()
    assert await jobs.retry_failed("work", None) == 1
    counts = await _counts(bull)
    assert counts["prioritized"] == 1 and counts["wait"] == 0


async def test_promote_delayed(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    for i in range(5):
        await q.add(f"later-{i}", {}, {"delay": 60_000 * (i + 1)})
    await q.add("later-prio", {}, {"delay": 600_000, "priority": 2})
    listed = await jobs.list_jobs("work", ["delayed"], 2, None)
    assert await jobs.promote_delayed("work", 2) == 2
    waiting = await jobs.list_jobs("work", ["waiting", "prioritized"], 10, None)
    assert {j.id for j in waiting.jobs} == {j.id for j in listed.jobs}
    assert {j.name for j in waiting.jobs} == {"later-prio", "later-4"}  # due last, listed first
    assert [j.state for j in waiting.jobs if j.name == "later-prio"] == ["prioritized"]
    assert await jobs.promote_delayed("work", None) == 4
    assert await jobs.promote_delayed("work", None) == 0
    counts = await _counts(bull)
    assert counts["delayed"] == 0 and counts["wait"] == 5 and counts["prioritized"] == 1
    assert await redis.hget(f"{bull.prefix}:work:{listed.jobs[0].id}", "delay") == b"0"


async def test_drain_counts_what_it_removed(bull: Bull, jobs: BullMQJobs) -> None:
    q = bull.queue("work")
    for i in range(4):
        await q.add(f"w-{i}", {})
    for p in (1, 2):
        await q.add(f"p-{p}", {}, {"priority": p})
    for i in range(3):
        await q.add(f"d-{i}", {}, {"delay": 60_000})
    gate = Gate()
    bull.worker("work", gate, {"concurrency": 1})
    await until(lambda: _has_active(bull), what="a job held active")
    try:
        assert await jobs.drain("work", include_delayed=False) == 4 + 2 - 1  # one of them is active
        counts = await _counts(bull)
        assert counts["wait"] == 0 and counts["prioritized"] == 0 and counts["delayed"] == 3
        assert counts["active"] == 1
        assert await jobs.drain("work", include_delayed=True) == 3
        assert await jobs.drain("work", include_delayed=True) == 0
        assert (await _counts(bull))["active"] == 1
    finally:
        gate.release.set()


async def _has_active(bull: Bull) -> bool:
    return (await _counts(bull))["active"] == 1


async def test_clean_returns_the_removed_ids(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    for i in range(5):
        await q.add(f"ok-{i}", {})
    await q.add("bad-0", {})
    worker = bull.worker("work", _process)
    await _settle(bull, completed=5, failed=1)
    await worker.close()
    completed = set(_ids(await redis.zrange(f"{bull.prefix}:work:completed", 0, -1)))
    assert await jobs.clean("work", "completed", 3_600_000, 0) == []  # all younger than an hour
    removed = await jobs.clean("work", "completed", 0, 2)
    assert len(removed) == 2 and set(removed) <= completed
    rest = await jobs.clean("work", "completed", 0, 0)
    assert set(rest) | set(removed) == completed and not set(rest) & set(removed)
    assert not await redis.exists(f"{bull.prefix}:work:{removed[0]}")
    assert len(await jobs.clean("work", "failed", 0, 0)) == 1
    for i in range(3):
        await q.add(f"w-{i}", {})
    assert len(await jobs.clean("work", "wait", 0, 0)) == 3
    await q.add("later", {}, {"delay": 60_000})
    assert len(await jobs.clean("work", "delayed", 0, 0)) == 1
    await q.add("prio", {}, {"priority": 1})
    assert len(await jobs.clean("work", "prioritized", 0, 0)) == 1
    assert await jobs.clean("work", "paused", 0, 0) == []
    with pytest.raises(InvalidArgument) as bad:
        await jobs.clean("work", "active", 0, 0)
    assert bad.value.field == "state"
    with pytest.raises(InvalidArgument):
        await jobs.clean("work", "completed", -1, 0)


async def test_add_job(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    await bull.queue("work").add("first", {})  # the queue must exist first
    plain = await jobs.add_job("work", "send-mail", '{"to": "a@example.com"}', 0, 0, 0)
    assert (plain.name, plain.state, plain.max_attempts) == ("send-mail", "waiting", 1)
    stored = await redis.hget(f"{bull.prefix}:work:{plain.id}", "data")
    assert stored is not None and json.loads(stored) == {"to": "a@example.com"}
    delayed = await jobs.add_job("work", "later", "[1, 2]", 60_000, 0, 3)
    assert (delayed.state, delayed.delay_ms, delayed.max_attempts) == ("delayed", 60_000, 3)
    prio = await jobs.add_job("work", "urgent", "null", 0, 7, 0)
    assert (prio.state, prio.priority) == ("prioritized", 7)
    with pytest.raises(InvalidArgument) as bad:
        await jobs.add_job("work", "x", "{not json", 0, 0, 0)
    assert bad.value.field == "data"
    for args in ((-1, 0, 0), (0, -1, 0), (0, 3_000_000, 0), (0, 0, -1)):
        with pytest.raises(InvalidArgument):
            await jobs.add_job("work", "x", "{}", *args)
    with pytest.raises(NotFound):
        await jobs.add_job("missing", "x", "{}", 0, 0, 0)


async def test_single_job_actions(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    ok = await q.add("ok", {})
    bad = await q.add("bad", {})
    worker = bull.worker("work", _process)
    await _settle(bull, completed=1, failed=1)
    await worker.close()
    waiting = await q.add("waiting", {})
    later = await q.add("later", {}, {"delay": 60_000})

    assert await jobs.job_state("work", ok.id) == "completed"
    assert await jobs.retry_job("work", ok.id) == "completed"
    assert await jobs.retry_job("work", bad.id) == "failed"
    assert await jobs.job_state("work", bad.id) == "waiting"
    with pytest.raises(FailedPrecondition) as err:
        await jobs.retry_job("work", waiting.id)
    assert "waiting" in err.value.message and err.value.metadata["state"] == "waiting"

    with pytest.raises(FailedPrecondition) as err:
        await jobs.promote_job("work", waiting.id)
    assert err.value.metadata["state"] == "waiting"
    assert await jobs.promote_job("work", later.id) == "delayed"
    assert await jobs.job_state("work", later.id) == "waiting"

    assert await jobs.remove_job("work", waiting.id) == "waiting"
    assert not await redis.exists(f"{bull.prefix}:work:{waiting.id}")
    with pytest.raises(NotFound):
        await jobs.remove_job("work", waiting.id)
    for action in (jobs.retry_job, jobs.promote_job, jobs.remove_job):
        with pytest.raises(NotFound) as missing:
            await action("work", "no-such-job")
        assert missing.value.reason == "JOB_NOT_FOUND"
        with pytest.raises(NotFound) as missing:
            await action("no-such-queue", ok.id)
        assert missing.value.reason == "QUEUE_NOT_FOUND"


async def test_active_jobs_are_never_removed(bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    gate = Gate()
    bull.worker("work", gate, {"concurrency": 1})
    held = await q.add("held", {})
    await until(lambda: _has_active(bull), what="a job held active")
    try:
        with pytest.raises(JobIsActive) as err:
            await jobs.remove_job("work", held.id)
        assert err.value.job_id == held.id and err.value.reason == "JOB_ACTIVE"
        assert isinstance(err.value, FailedPrecondition)
        assert await redis.exists(f"{bull.prefix}:work:{held.id}")
        assert await jobs.job_state("work", held.id) == "active"
        with pytest.raises(FailedPrecondition):
            await jobs.retry_job("work", held.id)
    finally:
        gate.release.set()
    await _settle(bull, completed=1, active=0)
    assert await jobs.remove_job("work", held.id) == "completed"

    # A job whose lock is held (taken by a worker just now) is refused even if it is listed elsewhere.
    other = await q.add("other", {}, {"delay": 60_000})
    await redis.set(f"{bull.prefix}:work:{other.id}:lock", "someone", px=60_000)
    with pytest.raises(JobIsActive):
        await jobs.remove_job("work", other.id)
    assert await redis.exists(f"{bull.prefix}:work:{other.id}")


async def test_exists_and_unknown_queues(bull: Bull, jobs: BullMQJobs) -> None:
    assert not await jobs.exists("work")
    await bull.queue("work").add("a", {})
    assert await jobs.exists("work")
    for call in (
        jobs.pause("nope"),
        jobs.resume("nope"),
        jobs.retry_failed("nope", None),
        jobs.promote_delayed("nope", 1),
        jobs.drain("nope", include_delayed=True),
        jobs.clean("nope", "completed", 0, 0),
    ):
        with pytest.raises(NotFound) as err:
            await call
        assert err.value.reason == "QUEUE_NOT_FOUND"


async def test_shares_the_callers_client(bull: Bull, redis: aioredis.Redis) -> None:
    jobs = BullMQJobs(redis, prefix=bull.prefix)
    await bull.queue("work").add("a", {})
    assert await jobs.pause("work")
    queue = jobs._bull("work")
    assert queue.client is redis  # bullmq runs its scripts over the caller's client and pool
    assert jobs._bull("work") is queue  # one bullmq Queue per queue name
    await jobs.close()
    assert await redis.ping()  # closing the actions leaves the caller's client open
    assert await BullMQJobs(redis, prefix=bull.prefix).resume("work")
