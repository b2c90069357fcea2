"""A real bullmq worker, instrumented with the SDK, driven through HeartbeatService commands."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from bullmq import Job, Queue

from tests.support.bull import until
from tests.support.heartbeat import Running, maybe_worker_view, start_heartbeat, worker_view
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.redis_store import EmbeddedRedis, connect
from workermon_sdk import Backoff
from workermon_sdk.bullmq import InstrumentedWorker


@pytest.fixture
async def live(redis_url: str, prefix: str, authority: TokenAuthority) -> AsyncIterator[Running]:
    running = await start_heartbeat(redis_url, prefix, authority, time.time, beat_interval_seconds=1)
    yield running
    for channel in running.channels:
        await channel.close()
    await running.stop()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    q = Queue("wm-e2e-" + uuid.uuid4().hex[:8], {"connection": redis_url})
    yield q
    await q.obliterate({"force": True})
    await q.close()


async def _stubborn(job: Job, token: str) -> Any:
    """Ignores any abort signal: only cancelling its task stops it."""
    if job.name == "slow":
        await asyncio.sleep(3600)
    return "ok"


async def _polite(job: Job, token: str, signal: Any) -> Any:
    """Honours the abort signal."""
    if job.name == "slow":
        await signal.wait()
        signal.throw_if_aborted()
    return "ok"


async def _command(live: Running, worker_id: str, ctype: int, **fields: Any) -> pb.Command:
    operator = live.service_client()
    sent = (
        await operator.SendCommand(pb.SendCommandRequest(worker_id=worker_id, type=ctype, **fields))
    ).command
    final: dict[str, pb.Command] = {}

    async def settled() -> bool:
        got = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
        final["c"] = got
        return got.status in (pb.COMMAND_STATUS_ACKED, pb.COMMAND_STATUS_FAILED)

    await until(settled, what=f"ack of {pb.CommandType.Name(ctype)}")
    return final["c"]


@pytest.mark.parametrize(
    ("processor", "expected"),
    [(_stubborn, "ignored the abort signal"), (_polite, "cancelled cooperatively")],
    ids=["non-cooperative", "cooperative"],
)
async def test_commands_reach_a_real_bullmq_worker(
    live: Running, queue: Queue, redis_url: str, processor: Any, expected: str
) -> None:
    worker_id = "e2e-" + uuid.uuid4().hex[:6]
    worker = InstrumentedWorker(
        queue.name,
        processor,
        {"connection": redis_url, "concurrency": 2},
        target=live.target,
        token=live.authority.mint(worker_id, "worker", worker=worker_id),
        worker_id=worker_id,
        cancel_grace_seconds=0.5,
    )
    await worker.start()
    try:
        slow = await queue.add("slow", {"n": 1}, {"attempts": 3})

        async def running_slow() -> bool:
            w = await maybe_worker_view(live, worker_id)
            return w is not None and slow.id in w.report.active_job_ids

        await until(running_slow, what="the slow job reported as active")

        cancelled = await _command(live, worker_id, pb.COMMAND_TYPE_CANCEL_JOB, job_id=slow.id)
        assert cancelled.status == pb.COMMAND_STATUS_ACKED, cancelled.result
        assert expected in cancelled.result

        async def slow_failed() -> bool:
            return await queue.getJobState(slow.id) == "failed"

        await until(slow_failed, what="the cancelled job failed (no retry)")
        failed = await Job.fromId(queue, slow.id)
        assert failed.attemptsMade == 1

        # The worker goes on with other jobs.
        quick = await queue.add("quick", {"n": 2})

        async def quick_done() -> bool:
            return await queue.getJobState(quick.id) == "completed"

        await until(quick_done, what="a job after the cancel completed")

        quiet = await _command(live, worker_id, pb.COMMAND_TYPE_QUIET)
        assert quiet.status == pb.COMMAND_STATUS_ACKED
        held = await queue.add("quick", {"n": 3})
        await asyncio.sleep(1.5)
        assert await queue.getJobState(held.id) == "waiting"

        async def reported_quiet() -> bool:
            return (await worker_view(live, worker_id)).report.state == pb.WORKER_STATE_QUIET

        await until(reported_quiet, what="QUIET state reported")
        resumed = await _command(live, worker_id, pb.COMMAND_TYPE_RESUME)
        assert resumed.status == pb.COMMAND_STATUS_ACKED

        async def held_done() -> bool:
            return await queue.getJobState(held.id) == "completed"

        await until(held_done, what="the held job completed after RESUME")

        missing = await _command(live, worker_id, pb.COMMAND_TYPE_CANCEL_JOB, job_id="no-such-job")
        assert missing.status == pb.COMMAND_STATUS_FAILED
        assert "not running" in missing.result

        stopped = await _command(live, worker_id, pb.COMMAND_TYPE_STOP, reason="scale down")
        assert stopped.status == pb.COMMAND_STATUS_ACKED
        await asyncio.wait_for(worker.wait_closed(), 20)
        view = await worker_view(live, worker_id)
        assert view.status == pb.WORKER_STATUS_OFFLINE
        assert view.offline_reason.startswith("goodbye")
        assert view.report.processed_total == 2
        assert view.report.failed_total == 1
    finally:
        await worker.close(force=True)


@pytest.mark.slow
async def test_worker_keeps_processing_while_suite_redis_restarts(
    tmp_path: Path, queue: Queue, redis_url: str, authority: TokenAuthority, prefix: str
) -> None:
    """The suite's Redis goes away; the worker (whose queues live elsewhere) never stops processing."""
    suite_redis = EmbeddedRedis(tmp_path)
    suite_redis.start()
    client = connect(suite_redis.url)
    live = await start_heartbeat(suite_redis.url, prefix, authority, time.time, beat_interval_seconds=1)
    worker_id = "e2e-fault-" + uuid.uuid4().hex[:6]
    done: list[str] = []

    async def process(job: Job, token: str) -> Any:
        await asyncio.sleep(0.01)
        done.append(job.id)
        return job.id

    worker = InstrumentedWorker(
        queue.name,
        process,
        {"connection": redis_url, "concurrency": 4},
        target=live.target,
        token=authority.mint(worker_id, "worker", worker=worker_id),
        worker_id=worker_id,
        backoff=Backoff(base=0.1, cap=0.5),
    )
    await worker.start()
    try:

        async def online() -> bool:
            w = await maybe_worker_view(live, worker_id)
            return w is not None and w.status == pb.WORKER_STATUS_ONLINE

        await until(online, what="worker online")
        added = [await queue.add("j", {"i": i}) for i in range(20)]
        suite_redis.stop()
        # While the registry is down, jobs keep flowing.
        added += [await queue.add("j", {"i": i}) for i in range(20, 60)]
        await until(lambda: _done(done, 60), what="60 jobs processed during the outage")
        await asyncio.sleep(2)  # several failed beats, each retried with backoff
        assert not worker.heartbeat.connected
        assert isinstance(worker.heartbeat.last_error, grpc.aio.AioRpcError)
        assert worker.heartbeat.last_error.code() == grpc.StatusCode.UNAVAILABLE
        suite_redis.start()
        added += [await queue.add("j", {"i": i}) for i in range(60, 80)]
        await until(online, limit=30, what="worker online again after Redis returned")
        await until(lambda: _done(done, 80), what="all 80 jobs processed")
        assert sorted(done) == sorted(j.id for j in added)
    finally:
        await worker.close(force=True)
        await live.stop()
        await client.aclose()
        suite_redis.stop()


async def _done(done: list[str], n: int) -> bool:
    return len(done) >= n
