"""Every refused token and every bad field gets its canonical code and a machine-readable reason."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import jwt
import pytest

from tests.support.fakes import TEST_SECRET
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.errors import error_info

from ..support.heartbeat import Running, report


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_no_token(hb: Running) -> None:
    channel = grpc.aio.insecure_channel(hb.target)
    try:
        err = await _refused(pb_grpc.HeartbeatServiceStub(channel).ListWorkers(pb.ListWorkersRequest()))
    finally:
        await channel.close()
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(err).reason == "TOKEN_MISSING"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("claims", "key", "algorithm", "reason"),
    [
        ({"exp": -10}, TEST_SECRET, "HS256", "TOKEN_EXPIRED"),
        ({}, "another-secret-" + "y" * 40, "HS256", "TOKEN_INVALID"),
        ({}, None, "none", "TOKEN_INVALID"),
        ({"iss": "someone-else"}, TEST_SECRET, "HS256", "TOKEN_INVALID"),
        ({"role": "root"}, TEST_SECRET, "HS256", "TOKEN_INVALID"),
    ],
    ids=["expired", "wrong-key", "alg-none", "wrong-issuer", "unknown-role"],
)
async def test_bad_tokens(
    hb: Running, claims: dict[str, object], key: str | None, algorithm: str, reason: str
) -> None:
    now = int(time.time())
    body: dict[str, object] = {
        "sub": "mallory",
        "role": "admin",
        "iss": "workermon",
        "iat": now,
        "exp": now + 60,
    }
    if "exp" in claims:
        claims = {**claims, "exp": now + int(claims["exp"])}  # type: ignore[call-overload]
    body.update(claims)
    token = jwt.encode(body, key, algorithm=algorithm)  # type: ignore[arg-type]
    err = await _refused(hb.client(token=token).ListWorkers(pb.ListWorkersRequest()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_info(err).reason == reason  # type: ignore[union-attr]


async def test_roles_per_rpc(hb: Running) -> None:
    viewer, worker = hb.client("viewer"), hb.client("worker")
    err = await _refused(viewer.Beat(pb.BeatRequest(report=report("w-1"))))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err)
    assert info is not None and info.reason == "ROLE_NOT_ALLOWED" and info.domain == "heartbeat.workermon"
    assert info.metadata["required_role"] == "worker"
    err = await _refused(worker.ListWorkers(pb.ListWorkersRequest()))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    await hb.service_client().SendCommand(pb.SendCommandRequest(worker_id="w-1", type=pb.COMMAND_TYPE_QUIET))
    await hb.client("admin").Beat(pb.BeatRequest(report=report("diag")))


@pytest.mark.parametrize("role", ["viewer", "worker", "operator", "admin"])
async def test_send_command_is_for_the_suites_services_only(hb: Running, role: str) -> None:
    """A direct caller never gets more than through MonitorService: not even an admin may send."""
    await hb.client("worker").Beat(pb.BeatRequest(report=report("w-direct")))
    err = await _refused(
        hb.client(role).SendCommand(pb.SendCommandRequest(worker_id="w-direct", type=pb.COMMAND_TYPE_STOP))
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err)
    assert info is not None and info.reason == "SERVICE_ONLY"
    assert "MonitorService" in err.details()


async def test_a_worker_token_speaks_for_its_own_worker_only(hb: Running) -> None:
    mine = hb.client("worker", worker="pay-1")
    pattern = hb.client("worker", worker="pay-*")
    unbound = hb.client(token=hb.authority.mint("legacy", "worker"))
    await mine.Beat(pb.BeatRequest(report=report("pay-1")))
    await pattern.Beat(pb.BeatRequest(report=report("pay-7")))
    for client, worker_id in ((mine, "pay-2"), (pattern, "mail-1"), (unbound, "pay-1")):
        err = await _refused(client.Beat(pb.BeatRequest(report=report(worker_id))))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(err)
        assert info is not None and info.reason == "WORKER_NOT_BOUND"
        assert info.metadata["worker_id"] == worker_id
    # Another worker's goodbye and its command stream are refused the same way.
    err = await _refused(mine.Goodbye(pb.GoodbyeRequest(worker_id="pay-7")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    async def other() -> AsyncIterator[pb.BeatStreamRequest]:
        yield pb.BeatStreamRequest(report=report("pay-7"))

    err = await _refused(_first(mine.BeatStream(other())))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    viewer = hb.client("viewer")
    seen = await viewer.GetWorker(pb.GetWorkerRequest(worker_id="pay-7"))
    assert seen.worker.status == pb.WORKER_STATUS_ONLINE  # the refused goodbye changed nothing


async def _first(stream: Any) -> Any:
    async for item in stream:
        return item
    return None


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: pb.BeatRequest(report=report("")), "report.worker_id"),
        (lambda: pb.BeatRequest(report=report("x" * 1_000_000)), "report.worker_id"),
        (lambda: pb.BeatRequest(report=report("bad id with spaces")), "report.worker_id"),
        (
            lambda: pb.BeatRequest(report=report("w", queues=tuple(f"q{i}" for i in range(10_000)))),
            "report.queues",
        ),
        (lambda: pb.BeatRequest(report=report("w", queues=("ok", "bad\nname"))), "report.queues[1]"),
        (lambda: pb.BeatRequest(report=report("w", instance_id="")), "report.instance_id"),
        (lambda: pb.BeatRequest(report=report("w", active_jobs=-1)), "report.active_jobs"),
        (lambda: pb.BeatRequest(report=report("w"), acks=[pb.CommandAck()]), "acks[0].command_id"),
    ],
    ids=[
        "empty-id",
        "1mb-id",
        "spaces",
        "10k-queues",
        "control-char-queue",
        "no-instance",
        "negative",
        "empty-ack",
    ],
)
async def test_bad_beats_name_the_field(hb: Running, make: object, field: str) -> None:
    err = await _refused(hb.client("worker").Beat(make()))  # type: ignore[operator]
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(err)
    assert info is not None and info.metadata["field"] == field
    assert (err.details() or "").startswith(field)


async def test_bad_list_requests(hb: Running) -> None:
    viewer = hb.client("viewer")
    err = await _refused(viewer.ListWorkers(pb.ListWorkersRequest(page_size=-1)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err).metadata["field"] == "page_size"  # type: ignore[union-attr]
    err = await _refused(viewer.ListWorkers(pb.ListWorkersRequest(page_token="garbage")))
    assert error_info(err).metadata["field"] == "page_token"  # type: ignore[union-attr]
    err = await _refused(viewer.WatchWorkers(pb.WatchWorkersRequest(after_event_id="nope")).read())
    assert error_info(err).metadata["field"] == "after_event_id"  # type: ignore[union-attr]
    big = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=100_000))
    assert not big.workers  # coerced to the maximum, not refused
