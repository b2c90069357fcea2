"""Redis stopped and restarted under a running HeartbeatService: NOT_SERVING, UNAVAILABLE, then recovery."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info
from workermon_core.redis_store import EmbeddedRedis, connect

from ..support.heartbeat import report, start_heartbeat


async def _health(target: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=2
        )
        return int(reply.status)


async def _until(predicate, limit: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_redis_restart_reports_not_serving_then_recovers(
    tmp_path: Path, authority: TokenAuthority, prefix: str
) -> None:
    server = EmbeddedRedis(tmp_path)
    server.start()
    redis = connect(server.url)
    running = await start_heartbeat(server.url, prefix, authority, time.time)
    try:
        worker = running.client("worker")
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

        async def is_serving() -> bool:
            return await _health(running.target) == serving

        async def is_down() -> bool:
            return await _health(running.target, "workermon.heartbeat.v1.HeartbeatService") == not_serving

        await _until(is_serving)
        await worker.Beat(pb.BeatRequest(report=report("w-1")))

        server.stop()
        await _until(is_down)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await worker.Beat(pb.BeatRequest(report=report("w-1")))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_info(caught.value).reason == "REDIS_UNAVAILABLE"  # type: ignore[union-attr]

        server.start()  # same port, same data directory
        await _until(is_serving)
        await worker.Beat(pb.BeatRequest(report=report("w-1")))
        got = (await running.client("viewer").GetWorker(pb.GetWorkerRequest(worker_id="w-1"))).worker
        assert got.status == pb.WORKER_STATUS_ONLINE
    finally:
        await running.stop()
        await redis.aclose()
        server.stop()
