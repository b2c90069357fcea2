"""Rate limits, global concurrency, priorities, deduplication and stalled jobs through MonitorService,
on queues Node BullMQ wrote and worked (tests/node/limits.mjs)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from tests.monitor.test_service import Suite, audit_rows, build_suite
from tests.support.bull import until
from tests.support.nodejs import NodeProcess, start_produce
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info

Start = Callable[[str, str], Awaitable[NodeProcess]]


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[Suite]:
    built, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority)
    yield built
    await stop()


@pytest.fixture
async def node(suite: Suite) -> AsyncIterator[Start]:
    started: list[NodeProcess] = []

    async def start(queue: str, mode: str) -> NodeProcess:
        process = await start_produce(suite.redis_url, suite.queue_prefix, queue, mode, script="limits.mjs")
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            await process.stop()


async def test_rate_limit_and_global_concurrency_on_the_board(suite: Suite, node: Start) -> None:
    viewer = suite.client("viewer")
    await node("rated", "ratelimit")
    await node("capped", "concurrency")

    async def held_back() -> bool:
        queues = {q.name: q for q in (await viewer.ListQueues(pb.ListQueuesRequest())).queues}
        rated, capped = queues.get("rated"), queues.get("capped")
        return (
            rated is not None
            and rated.rate_limit.limited
            and capped is not None
            and capped.global_concurrency.running == 2
        )

    await until(held_back, what="the rate limit reached and global concurrency filled")
    queues = {q.name: q for q in (await viewer.ListQueues(pb.ListQueuesRequest())).queues}
    rate = queues["rated"].rate_limit
    assert (rate.max, rate.duration_ms, rate.window_count, rate.manual) == (2, 60_000, 2, False)
    assert 0 < rate.resets_in_ms <= 60_000
    assert not queues["rated"].HasField("global_concurrency")
    capped = queues["capped"].global_concurrency
    assert (capped.limit, capped.running, capped.maxed) == (2, 2, True)
    assert not queues["capped"].HasField("rate_limit")
    # The per-queue breakdowns are GetQueue's alone.
    assert not queues["rated"].HasField("priorities")
    one = (await viewer.GetQueue(pb.GetQueueRequest(queue="rated"))).queue
    assert one.rate_limit.limited and one.HasField("priorities") and one.HasField("stalled")


async def test_priorities_and_deduplication(suite: Suite, node: Start) -> None:
    viewer = suite.client("viewer")
    ids = (await node("ranked", "priorities")).ready["ids"]
    queue = (await viewer.GetQueue(pb.GetQueueRequest(queue="ranked"))).queue
    assert [(p.priority, p.count) for p in queue.priorities.levels] == [(1, 3), (5, 2), (2_097_151, 1)]
    assert not queue.priorities.truncated

    found = await viewer.GetDeduplicatedJob(
        pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id="user-42")
    )
    assert found.job.job_id == ids["kept"] and found.job.deduplication_id == "user-42"
    assert not found.HasField("expires_in_ms")
    found = await viewer.GetDeduplicatedJob(
        pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id="burst")
    )
    assert found.job.job_id == ids["ttl"] and 0 < found.expires_in_ms <= 600_000
    detail = (await viewer.GetJob(pb.GetJobRequest(queue="ranked", job_id=ids["kept"]))).job
    assert detail.summary.deduplication_id == "user-42"

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await viewer.GetDeduplicatedJob(
            pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id="nobody")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(missing.value)
    assert info is not None and info.reason == "DEDUPLICATION_ID_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as no_queue:
        await viewer.GetDeduplicatedJob(
            pb.GetDeduplicatedJobRequest(queue="nope", deduplication_id="user-42")
        )
    assert no_queue.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in ("", "x" * 513):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await viewer.GetDeduplicatedJob(
                pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id=bad)
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "deduplication_id" in (refused.value.details() or "")


async def test_a_stalled_node_job_is_marked_then_counted(suite: Suite, node: Start) -> None:
    viewer = suite.client("viewer")
    stuck = await node("stalling", "stall")
    job_id = stuck.ready["ids"]["job"]
    os.kill(stuck.ready["pid"], signal.SIGKILL)
    await stuck.proc.wait()

    async def suspected() -> bool:
        page = await viewer.ListJobs(pb.ListJobsRequest(queue="stalling", states=[pb.JOB_STATE_ACTIVE]))
        return [(j.job_id, j.stalled_suspected) for j in page.jobs] == [(job_id, True)]

    await until(suspected, what="the killed worker's job shown as stalled")
    queue = (await viewer.GetQueue(pb.GetQueueRequest(queue="stalling"))).queue
    assert (queue.stalled.candidates, queue.stalled.examined) == (1, 1)

    await node("stalling", "recover")

    async def recovered() -> bool:
        job = (await viewer.GetJob(pb.GetJobRequest(queue="stalling", job_id=job_id))).job
        return job.summary.state == pb.JOB_STATE_COMPLETED

    await until(recovered, what="the stalled job put back and completed")
    job = (await viewer.GetJob(pb.GetJobRequest(queue="stalling", job_id=job_id))).job
    assert job.summary.stalled_count == 1 and not job.summary.stalled_suspected


async def test_release_a_deduplication_id(suite: Suite, node: Start) -> None:
    viewer, operator = suite.client("viewer"), suite.client("operator", "olga")
    ids = (await node("ranked", "priorities")).ready["ids"]
    release = pb.ReleaseDeduplicationIdRequest(queue="ranked", job_id=ids["kept"])

    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await viewer.ReleaseDeduplicationId(release)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    released = await operator.ReleaseDeduplicationId(release)
    assert released.deduplication_id == "user-42" and released.audit_id
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await viewer.GetDeduplicatedJob(
            pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id="user-42")
        )
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    # The next job added with the id is kept, and holds it.
    again = await suite.queue("ranked").add("dedup", {"n": 3}, {"deduplication": {"id": "user-42"}})
    try:
        assert again.id != ids["kept"]
        holder = await viewer.GetDeduplicatedJob(
            pb.GetDeduplicatedJobRequest(queue="ranked", deduplication_id="user-42")
        )
        assert holder.job.job_id == again.id
    finally:
        await suite.queue("ranked").close()

    for job_id, reason in ((ids["kept"], "DEDUPLICATION_NOT_HELD"), (ids["prio"][0], "NO_DEDUPLICATION_ID")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await operator.ReleaseDeduplicationId(
                pb.ReleaseDeduplicationIdRequest(queue="ranked", job_id=job_id)
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(refused.value)
        assert info is not None and info.reason == reason
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await operator.ReleaseDeduplicationId(pb.ReleaseDeduplicationIdRequest(queue="ranked", job_id="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    rows = await audit_rows(suite, action=pb.AUDIT_ACTION_DEDUPLICATION_RELEASE)
    outcomes = sorted(pb.AuditOutcome.Name(r.outcome) for r in rows)
    assert outcomes == [
        "AUDIT_OUTCOME_DENIED",
        "AUDIT_OUTCOME_FAILED",
        "AUDIT_OUTCOME_FAILED",
        "AUDIT_OUTCOME_FAILED",
        "AUDIT_OUTCOME_SUCCEEDED",
    ]
    done = next(r for r in rows if r.outcome == pb.AUDIT_OUTCOME_SUCCEEDED)
    assert (
        done.actor == "olga"
        and done.entity_id == f"ranked/{ids['kept']}"
        and done.result["deduplication_id"] == "user-42"
    )
