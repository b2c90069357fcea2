"""Jobs produced and processed by Node BullMQ (tests/node): listed and read right, and acted on.

Node writes fields python bullmq does not (`pb`, the worker's name; `version` in the meta hash) and
keeps UTF-8 in its JSON, so this is where cutting a payload at a character boundary shows.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.support.bull import Bull, until
from tests.support.nodejs import NodeProcess, start_produce
from workermon_queues import BullMQJobs
from workermon_queues.replies import text

QUEUE = "nodeq"


@pytest.fixture
async def node_worker(redis_url: str, bull: Bull) -> AsyncIterator[NodeProcess]:
    node_process = await start_produce(redis_url, bull.prefix, QUEUE, "mixed")
    try:
        yield node_process
    finally:
        await node_process.stop()


async def _counts(redis: aioredis.Redis, prefix: str) -> dict[str, int]:
    base = f"{prefix}:{QUEUE}:"
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(base + "completed")
        pipe.zcard(base + "failed")
        pipe.zcard(base + "delayed")
        pipe.llen(base + "wait")
        pipe.llen(base + "active")
        pipe.zcard(base + "prioritized")
        replies = await pipe.execute()
    names = ("completed", "failed", "delayed", "wait", "active", "prioritized")
    return dict(zip(names, replies, strict=True))


async def test_node_jobs_are_listed_read_and_acted_on(
    node_worker: NodeProcess, redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    ids = node_worker.ready["ids"]
    prefix = bull.prefix

    async def settled(**expected: int) -> None:
        async def reached() -> bool:
            counts = await _counts(redis, prefix)
            return all(counts[k] == v for k, v in expected.items())

        await until(reached, what=f"Node worker reaching {expected}")

    await settled(completed=4, failed=2, delayed=2, wait=0, active=0, prioritized=0)
    assert await jobs.exists(QUEUE)
    assert text(await redis.hget(f"{prefix}:{QUEUE}:meta", "version")).startswith("bullmq:")

    # Listing: every state, Node's fields read the same as python bullmq's.
    page = await jobs.list_jobs(QUEUE, ["failed", "delayed", "completed"], 100, None)
    assert page.total == 8
    by_state: dict[str, list[str]] = {}
    for job in page.jobs:
        by_state.setdefault(job.state, []).append(job.id)
    assert sorted(by_state["failed"]) == sorted(ids["flaky"])
    assert by_state["delayed"] == ids["later"][::-1]
    assert sorted(by_state["completed"]) == sorted(ids["ok"] + ids["prio"])
    failed = [j for j in page.jobs if j.state == "failed"]
    for job in failed:
        assert job.name == "flaky" and job.attempts_made == 1 and job.max_attempts == 1
        assert job.failed_reason == "ECONNREFUSED 127.0.0.1:9 (first run)"
        assert job.failure_category == "network"
    completed = {j.id: j for j in page.jobs if j.state == "completed"}
    assert completed[ids["prio"][0]].priority == 4
    assert all(j.duration_ms is not None and j.duration_ms >= 0 for j in completed.values())
    network = await jobs.list_jobs(QUEUE, ["failed", "completed"], 100, None, category="network")
    assert sorted(j.id for j in network.jobs) == sorted(ids["flaky"])
    prio = await jobs.list_jobs(QUEUE, ["completed"], 10, None, name_prefix="pr")
    assert [j.id for j in prio.jobs] == ids["prio"]

    # One job in full, as Node wrote it.
    detail = await jobs.get_job(QUEUE, ids["ok"][0], 100_000)
    assert json.loads(detail.data) == {"n": 0, "text": "héllo wörld"}
    assert json.loads(detail.return_value) == {"handled": ids["ok"][0], "by": "node", "text": "héllo wörld"}
    assert detail.processed_by == "node-worker-1"
    assert detail.logs == [f"node processing {ids['ok'][0]}"] and detail.logs_total == 1
    assert detail.progress_json == "40"
    assert [e.kind for e in detail.timeline] == ["created", "processed", "finished"]
    flaky = await jobs.get_job(QUEUE, ids["flaky"][0], 100_000)
    assert flaky.failed_reason_full == "ECONNREFUSED 127.0.0.1:9 (first run)"
    assert flaky.stacktrace and "ECONNREFUSED" in flaky.stacktrace[0]

    # Cuts fall on character boundaries: "é" is two bytes in Node's UTF-8 JSON.
    raw = await redis.hget(f"{prefix}:{QUEUE}:{ids['ok'][0]}", "data")
    assert isinstance(raw, bytes)
    inside = raw.index("é".encode()) + 1  # one byte into the character
    cut = await jobs.get_job(QUEUE, ids["ok"][0], inside)
    assert cut.data_truncated and cut.data_bytes == len(raw)
    assert cut.data.encode() == raw[: inside - 1]
    assert cut.return_value_truncated and raw  # the return value is longer than the cut too

    # Pause: a promoted job waits; resume: Node's worker runs it.
    assert await jobs.pause(QUEUE) is True
    assert await jobs.promote_job(QUEUE, ids["later"][0]) == "delayed"
    await asyncio.sleep(0.3)
    assert await jobs.job_state(QUEUE, ids["later"][0]) == "waiting"
    assert await jobs.resume(QUEUE) is True
    await settled(completed=5, delayed=1, wait=0, active=0)

    # Retry Node's failed jobs: its worker runs them again, and they succeed this time.
    assert await jobs.retry_failed(QUEUE, None) == 2
    await settled(completed=7, failed=0, wait=0, active=0)
    again = await jobs.get_job(QUEUE, ids["flaky"][1], 10_000)
    assert again.summary.state == "completed" and again.summary.attempts_made == 2
    assert json.loads(again.return_value)["by"] == "node"

    # A single retry of a completed job and promoting the rest of the delayed ones.
    assert await jobs.retry_job(QUEUE, ids["ok"][1]) == "completed"
    assert await jobs.promote_delayed(QUEUE, None) == 1
    await settled(completed=8, delayed=0, wait=0, active=0)
    assert await node_worker.stop() == 0
