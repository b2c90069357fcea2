"""A HeartbeatService in-process on port 0, against the real Redis, with a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import grpc
import pytest
import redis.asyncio as aioredis

from tests.conftest import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.server import SuiteServer, start_server
from workermon_core.settings import Settings
from workermon_heartbeat import service
from workermon_heartbeat.servicer import HeartbeatServicer


@dataclass
class Running:
    server: SuiteServer
    servicer: HeartbeatServicer
    target: str
    authority: TokenAuthority
    channels: list[grpc.aio.Channel]

    def client(self, role: str = "admin", token: str | None = None) -> pb_grpc.HeartbeatServiceStub:
        channel = open_channel(self.target, token or self.authority.mint(f"test-{role}", role))
        self.channels.append(channel)
        return pb_grpc.HeartbeatServiceStub(channel)


async def start_heartbeat(
    redis: aioredis.Redis,
    prefix: str,
    authority: TokenAuthority,
    clock: Callable[[], float],
    **overrides: object,
) -> Running:
    settings = Settings(
        redis_prefix=prefix,
        grpc_port=0,
        readiness_interval_seconds=0.2,
        sweep_interval_seconds=0.05,
        **overrides,
    )  # type: ignore[arg-type]
    spec, servicer = service.build(settings, redis, clock=clock)
    server = await start_server([spec], authority, "127.0.0.1:0", readiness_interval=0.2)
    return Running(server, servicer, f"127.0.0.1:{server.port}", authority, [])


@pytest.fixture
async def hb(
    redis: aioredis.Redis, prefix: str, authority: TokenAuthority, clock: FakeClock
) -> AsyncIterator[Running]:
    running = await start_heartbeat(redis, prefix, authority, clock)
    yield running
    for channel in running.channels:
        await channel.close()
    await running.server.stop(0.5)


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
