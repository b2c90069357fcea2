"""The health service's `liveness` name: SERVING while the process answers, whatever its dependencies,
so a liveness probe restarts a hung process but never one whose Redis or database is down."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from workermon.heartbeat.v1 import heartbeat_service_pb2
from workermon_core.auth import TokenAuthority
from workermon_core.server import LIVENESS_SERVICE, ServiceSpec, SuiteServer, start_server

SERVICE = heartbeat_service_pb2.DESCRIPTOR.services_by_name["HeartbeatService"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _dependency_down() -> None:
    raise ConnectionError("the dependency does not answer")


async def _dependency_up() -> None:
    return None


async def _status(port: int, service: str) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


async def _start(authority: TokenAuthority, spec: ServiceSpec, interval: float) -> SuiteServer:
    return await start_server([spec], authority, "127.0.0.1:0", readiness_interval=interval)


def _spec(*, up: bool) -> ServiceSpec:
    return ServiceSpec(
        name=SERVICE, register=lambda _server: None, checks=[_dependency_up if up else _dependency_down]
    )


async def test_liveness_is_serving_while_a_dependency_is_down(authority: TokenAuthority) -> None:
    suite = await _start(authority, _spec(up=False), 0.05)
    try:
        await asyncio.sleep(0.3)  # several readiness rounds, each finding the dependency down
        assert await _status(suite.port, "") == NOT_SERVING
        assert await _status(suite.port, SERVICE) == NOT_SERVING
        assert await _status(suite.port, LIVENESS_SERVICE) == SERVING
    finally:
        await suite.stop(0)


async def test_liveness_stays_serving_when_the_server_starts_draining(authority: TokenAuthority) -> None:
    # One readiness round at start, then none for a minute: nothing re-publishes SERVING behind the test.
    suite = await _start(authority, _spec(up=True), 60)
    try:
        for _ in range(100):
            if await _status(suite.port, "") == SERVING:
                break
            await asyncio.sleep(0.05)
        assert await _status(suite.port, "") == SERVING
        # What stop() publishes first: readiness goes, liveness does not (a draining pod is not restarted).
        await suite.set_ready(False)
        assert await _status(suite.port, "") == NOT_SERVING
        assert await _status(suite.port, LIVENESS_SERVICE) == SERVING
    finally:
        await suite.stop(0)
