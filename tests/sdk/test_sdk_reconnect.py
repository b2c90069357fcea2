"""The heartbeat service gone for longer than the SDK's old 30 s backoff cap, then back on the same port:
workers on the default settings, one beating on the stream and one by unary calls, beat again within
seconds, not after their backoff and gRPC's own reconnect backoff have run their course (up to ~40 s
before). One outage serves both transports: it is the slow part."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.support.bull import until
from tests.support.heartbeat import Running, maybe_worker_view, start_heartbeat
from workermon_core.auth import TokenAuthority
from workermon_sdk import HeartbeatClient

OUTAGE_SECONDS = 31.0
# Measured: ~1-3 s with the READY watch and the capped reconnect backoff; 6-40 s before them.
BACK_WITHIN_SECONDS = 5.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_workers_beat_again_within_seconds_of_the_service_returning(
    redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    service = await start_heartbeat(redis_url, prefix, authority, time.time, beat_interval_seconds=1)
    port = int(service.target.rsplit(":", 1)[1])
    clients: dict[bool, HeartbeatClient] = {}
    for use_stream in (True, False):
        worker_id = f"sdk-reconnect-{'stream' if use_stream else 'unary'}-" + uuid.uuid4().hex[:6]
        clients[use_stream] = HeartbeatClient(
            service.target,
            authority.mint(worker_id, "worker", worker=worker_id),
            worker_id=worker_id,
            use_stream=use_stream,
        )
    for client in clients.values():
        await client.start()
    serving: Running | None = service
    try:

        async def beat_since(client: HeartbeatClient, moment: float) -> bool:
            worker = await maybe_worker_view(service, client.worker_id)
            return worker is not None and worker.last_seen_time.ToMilliseconds() / 1000 >= moment

        async def both_beating() -> bool:
            return all([await beat_since(client, 0) for client in clients.values()])

        await until(both_beating, limit=15, what="the first beats")
        await service.stop()
        serving = None
        down_at = time.monotonic()

        async def noticed() -> bool:
            return not any(client.connected for client in clients.values())

        await until(noticed, limit=15, what="the clients noticing the outage")

        async def outage_over() -> bool:
            return time.monotonic() - down_at >= OUTAGE_SECONDS

        await until(outage_over, limit=OUTAGE_SECONDS + 1, what="the end of the outage")
        service = serving = await start_heartbeat(
            redis_url, prefix, authority, time.time, beat_interval_seconds=1, grpc_port=port
        )
        back_at, back_wall = time.monotonic(), time.time()

        async def back(use_stream: bool) -> float:
            client = clients[use_stream]
            await until(lambda: beat_since(client, back_wall), limit=60, what=f"a beat (stream={use_stream})")
            took = time.monotonic() - back_at
            print(f"worker visible again {took:.1f}s after the service returned (stream={use_stream})")
            return took

        took = dict(zip(clients, await asyncio.gather(*(back(s) for s in clients)), strict=True))
        assert all(seconds <= BACK_WITHIN_SECONDS for seconds in took.values()), took
    finally:
        for client in clients.values():
            await client.stop(goodbye=False)
        if serving is not None:
            await serving.stop()
