"""Command round trips over unary beats and over the stream, and expiry."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from google.protobuf import duration_pb2

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.errors import error_info

from ..support.heartbeat import Running, report


async def test_command_round_trip_over_beats(hb: Running) -> None:
    worker = hb.client("worker")
    operator = hb.service_client()
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    sent = (
        await operator.SendCommand(
            pb.SendCommandRequest(worker_id="w-1", type=pb.COMMAND_TYPE_QUIET, reason="deploy")
        )
    ).command
    assert sent.status == pb.COMMAND_STATUS_PENDING
    assert sent.requested_by == "test-operator"
    reply = await worker.Beat(pb.BeatRequest(report=report("w-1")))
    assert [(c.command_id, c.type, c.reason) for c in reply.commands] == [
        (sent.command_id, pb.COMMAND_TYPE_QUIET, "deploy")
    ]
    got = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
    assert got.status == pb.COMMAND_STATUS_DELIVERED
    again = await worker.Beat(
        pb.BeatRequest(
            report=report("w-1", state=pb.WORKER_STATE_QUIET),
            acks=[pb.CommandAck(command_id=sent.command_id, ok=True, result="paused")],
        )
    )
    assert not again.commands  # delivered once only
    done = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
    assert done.status == pb.COMMAND_STATUS_ACKED
    assert done.result == "paused"
    assert done.complete_time.seconds > 0


async def test_failed_ack_and_foreign_ack_ignored(hb: Running) -> None:
    worker = hb.client("worker")
    operator = hb.service_client()
    for wid in ("w-1", "w-2"):
        await worker.Beat(pb.BeatRequest(report=report(wid)))
    sent = (
        await operator.SendCommand(
            pb.SendCommandRequest(worker_id="w-1", type=pb.COMMAND_TYPE_CANCEL_JOB, job_id="42")
        )
    ).command
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    # Another worker cannot settle w-1's command.
    await worker.Beat(
        pb.BeatRequest(report=report("w-2"), acks=[pb.CommandAck(command_id=sent.command_id, ok=True)])
    )
    assert (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command.status == (
        pb.COMMAND_STATUS_DELIVERED
    )
    await worker.Beat(
        pb.BeatRequest(
            report=report("w-1"),
            acks=[
                pb.CommandAck(
                    command_id=sent.command_id, ok=False, result="job 42 is not running on this worker"
                )
            ],
        )
    )
    got = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
    assert got.status == pb.COMMAND_STATUS_FAILED
    assert "not running" in got.result


async def test_commands_expire(hb: Running, clock: FakeClock) -> None:
    worker = hb.client("worker")
    operator = hb.service_client()
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    sent = (
        await operator.SendCommand(
            pb.SendCommandRequest(
                worker_id="w-1", type=pb.COMMAND_TYPE_STOP, ttl=duration_pb2.Duration(seconds=5)
            )
        )
    ).command
    clock.advance(6)
    reply = await worker.Beat(pb.BeatRequest(report=report("w-1")))
    assert not reply.commands
    got = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
    assert got.status == pb.COMMAND_STATUS_EXPIRED


async def test_command_to_unknown_or_offline_worker_refused(hb: Running) -> None:
    worker = hb.client("worker")
    operator = hb.service_client()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operator.SendCommand(pb.SendCommandRequest(worker_id="nobody", type=pb.COMMAND_TYPE_QUIET))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    await worker.Goodbye(pb.GoodbyeRequest(worker_id="w-1", instance_id="inst-1"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operator.SendCommand(pb.SendCommandRequest(worker_id="w-1", type=pb.COMMAND_TYPE_QUIET))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(caught.value)
    assert info is not None and info.reason == "WORKER_OFFLINE"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operator.SendCommand(pb.SendCommandRequest(worker_id="w-1", type=pb.COMMAND_TYPE_CANCEL_JOB))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == "job_id"  # type: ignore[union-attr]


async def test_stream_pushes_commands_at_once(hb: Running) -> None:
    worker = hb.client("worker")
    operator = hb.service_client()
    outbox: asyncio.Queue[pb.BeatStreamRequest | None] = asyncio.Queue()

    async def requests():  # type: ignore[no-untyped-def]
        while (item := await outbox.get()) is not None:
            yield item

    call = worker.BeatStream(requests())
    await outbox.put(pb.BeatStreamRequest(report=report("s-1")))
    await asyncio.wait_for(call.read(), 5)
    started = time.perf_counter()
    sent = (
        await operator.SendCommand(
            pb.SendCommandRequest(worker_id="s-1", type=pb.COMMAND_TYPE_CANCEL_JOB, job_id="7")
        )
    ).command
    pushed = await asyncio.wait_for(call.read(), 5)
    latency = time.perf_counter() - started
    assert [(c.command_id, c.job_id) for c in pushed.commands] == [(sent.command_id, "7")]
    assert latency < 2.0, f"push took {latency:.3f}s"
    await outbox.put(
        pb.BeatStreamRequest(
            report=report("s-1"),
            acks=[pb.CommandAck(command_id=sent.command_id, ok=True, result="cancelled")],
        )
    )
    await asyncio.wait_for(call.read(), 5)
    got = (await operator.GetCommand(pb.GetCommandRequest(command_id=sent.command_id))).command
    assert got.status == pb.COMMAND_STATUS_ACKED
    await outbox.put(None)


async def test_queue_timings_merge_across_workers(hb: Running) -> None:
    from workermon_sdk.timings import TimingRecorder

    worker = hb.client("worker")
    minute_ms = 28_000_000 * 60_000
    for wid, values in (("w-1", [10.0, 20.0]), ("w-2", [30.0])):
        recorder = TimingRecorder()
        for value in values:
            recorder.record("emails", minute_ms + 5, value, 1.0)
        rep = report(wid)
        rep.timings.extend(recorder.outgoing())
        await worker.Beat(pb.BeatRequest(report=rep))
    viewer = hb.client("viewer")
    request = pb.GetQueueTimingsRequest(queues=["emails", "idle"])
    request.minute_time.FromMilliseconds(minute_ms)
    merged = (await viewer.GetQueueTimings(request)).timings
    assert [t.queue for t in merged] == ["emails"]
    assert (merged[0].processing.count, merged[0].processing.sum) == (3.0, 60.0)
    assert (merged[0].processing.min, merged[0].processing.max) == (10.0, 30.0)
    stored = (await viewer.GetWorker(pb.GetWorkerRequest(worker_id="w-1"))).worker
    assert not stored.report.timings  # kept per queue and minute, not in the worker's report
    request.minute_time.FromMilliseconds(minute_ms + 1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.GetQueueTimings(request)
    assert error_info(caught.value).metadata["field"] == "minute_time"  # type: ignore[union-attr]
