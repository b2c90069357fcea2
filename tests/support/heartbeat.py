"""A HeartbeatService in-process on port 0, against the real Redis, with a controllable clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest

from tests.support.fakes import FakeClock
from tests.support.suites import start_modules
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_cli.runtime import Suite
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.server import SuiteServer
from workermon_heartbeat.servicer import HeartbeatServicer


@dataclass
class Running:
    suite: Suite
    servicer: HeartbeatServicer
    target: str
    authority: TokenAuthority
    channels: list[grpc.aio.Channel]

    def client(
        self, role: str = "admin", token: str | None = None, *, worker: str = "*"
    ) -> pb_grpc.HeartbeatServiceStub:
        """A client with a `role` token; a worker token is bound to `worker` (any worker by default)."""
        minted = self.authority.mint(f"test-{role}", role, worker=worker if role == "worker" else None)
        channel = open_channel(self.target, token or minted)
        self.channels.append(channel)
        return pb_grpc.HeartbeatServiceStub(channel)

    def service_client(
        self, subject: str = "test-operator", role: str = "operator"
    ) -> pb_grpc.HeartbeatServiceStub:
        """A client as a suite service acting for `subject` (what MonitorService presents)."""
        return self.client(token=self.authority.mint(subject, role, actor="monitor"))

    @property
    def server(self) -> SuiteServer:
        """The gRPC server hosting HeartbeatService."""
        assert self.suite.server is not None
        return self.suite.server

    async def stop(self) -> None:
        """Close the test's channels and stop the service."""
        for channel in self.channels:
            await channel.close()
        await self.suite.stop()


async def start_heartbeat(
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    clock: Callable[[], float],
    **overrides: object,
) -> Running:
    # A BullMQ prefix of its own: the shared test Redis has other tests' BullMQ workers, which the
    # service would list as uninstrumented workers of the default prefix.
    overrides.setdefault("queue_prefix", "wmq-" + uuid.uuid4().hex[:10])
    suite = await start_modules(
        "heartbeat",
        redis_url=redis_url,
        authority=authority,
        database_url="sqlite+aiosqlite:///:memory:",
        clock=clock,
        migrate_first=False,
        redis_prefix=prefix,
        sweep_interval_seconds=0.05,
        **overrides,
    )
    return Running(suite, suite.parts("heartbeat").servicer, suite.grpc_target, authority, [])


async def worker_view(live: Running, worker_id: str) -> pb.Worker:
    """The worker as GetWorker shows it to a viewer."""
    return (await live.client("viewer").GetWorker(pb.GetWorkerRequest(worker_id=worker_id))).worker


async def maybe_worker_view(live: Running, worker_id: str) -> pb.Worker | None:
    """The worker, or None before its first beat arrives (or while the registry is down)."""
    try:
        return await worker_view(live, worker_id)
    except grpc.aio.AioRpcError as err:
        if err.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
            return None
        raise


@pytest.fixture
async def hb(
    redis_url: str, prefix: str, authority: TokenAuthority, clock: FakeClock
) -> AsyncIterator[Running]:
    running = await start_heartbeat(redis_url, prefix, authority, clock)
    yield running
    await running.stop()


def report(worker_id: str, queues: tuple[str, ...] = ("emails",), **fields: object) -> pb.WorkerReport:
    base: dict[str, object] = {
        "worker_id": worker_id,
        "instance_id": "inst-1",
        "hostname": "host-a",
        "pid": 4242,
        "queues": list(queues),
        "concurrency": 4,
        "state": pb.WORKER_STATE_RUNNING,
    }
    base.update(fields)
    return pb.WorkerReport(**base)  # type: ignore[arg-type]


async def beat_once(target: str, authority: TokenAuthority, worker_id: str, queues: tuple[str, ...]) -> None:
    """One beat of `worker_id` to the HeartbeatService at `target`, and then nothing more (no goodbye):
    the worker will be missed and go OFFLINE."""
    channel = open_channel(target, authority.mint(worker_id, "worker", worker=worker_id))
    try:
        beat = pb.BeatRequest(report=report(worker_id, queues, instance_id=uuid.uuid4().hex))
        await pb_grpc.HeartbeatServiceStub(channel).Beat(beat, timeout=10)
    finally:
        await channel.close()
