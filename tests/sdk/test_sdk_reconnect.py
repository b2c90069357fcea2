"""The heartbeat service gone for longer than the SDK's old 30 s backoff cap, then back on the same port:
a worker on the default settings beats again within seconds, not after its backoff and gRPC's own
reconnect backoff have run their course (up to ~40 s before)."""

from __future__ import annotations

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
@pytest.mark.parametrize("use_stream", [True, False])
async def test_a_worker_beats_again_within_seconds_of_the_service_returning(
    redis_url: str, prefix: str, authority: TokenAuthority, use_stream: bool
) -> None:
    service = await start_heartbeat(redis_url, prefix, authority, time.time, beat_interval_seconds=1)
    port = int(service.target.rsplit(":", 1)[1])
    worker_id = "sdk-reconnect-" + uuid.uuid4().hex[:6]
    client = HeartbeatClient(
        service.target,
        authority.mint(worker_id, "worker", worker=worker_id),
        worker_id=worker_id,
        use_stream=use_stream,
    )
    await client.start()
    serving: Running | None = service
    try:

        async def beat_since(moment: float) -> bool:
            worker = await maybe_worker_view(service, worker_id)
            return worker is not None and worker.last_seen_time.ToMilliseconds() / 1000 >= moment

        await until(lambda: beat_since(0), limit=15, what="the first beat")
        await service.stop()
        serving = None
        down_at = time.monotonic()

        async def noticed() -> bool:
            return not client.connected

        await until(noticed, limit=15, what="the client noticing the outage")

        async def outage_over() -> bool:
            return time.monotonic() - down_at >= OUTAGE_SECONDS

        await until(outage_over, limit=OUTAGE_SECONDS + 1, what="the end of the outage")
        service = serving = await start_heartbeat(
            redis_url, prefix, authority, time.time, beat_interval_seconds=1, grpc_port=port
        )
        back_at, back_wall = time.monotonic(), time.time()
        await until(lambda: beat_since(back_wall), limit=60, what="a beat after the service returned")
        took = time.monotonic() - back_at
        print(f"worker visible again {took:.1f}s after the service returned (stream={use_stream})")
        assert took <= BACK_WITHIN_SECONDS
    finally:
        await client.stop(goodbye=False)
        if serving is not None:
            await serving.stop()
