"""/metrics carries each discovered queue's 15-minute wait time, in the processing time's shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker

from tests.support.bull import until
from tests.support.services import start_services
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_collector.follower import MINUTE_MS
from workermon_collector.rows import DurationSummary, SnapshotRow
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel

from .test_metrics import MetricsGateway, _gateway, promtool_check, value


@pytest.fixture
async def wait_gateway(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[MetricsGateway]:
    services, stop = await start_services(
        tmp_path, redis, redis_url, prefix, authority, queues="waited", discover_queues=False
    )
    try:
        async for gw in _gateway(services, authority, services.target):
            yield gw
    finally:
        await stop()


async def test_wait_quantiles_for_discovered_queues_only(wait_gateway: MetricsGateway) -> None:
    services = wait_gateway.services
    assert services.suite is not None
    parts = services.suite.parts("collector")
    waited: Queue = wait_gateway.queue("waited")
    channel = open_channel(services.target, wait_gateway.authority.mint("ops", "viewer"))
    worker: Worker | None = None
    try:
        started = int(time.time() * 1000)
        for i in range(6):
            await waited.add("job", {"i": i})

        async def process(job: Job, token: str) -> Any:
            return "ok"

        # The jobs wait in the queue until a worker starts: every one has a wait time.
        worker = Worker(
            "waited", process, {"connection": services.redis_url, "prefix": services.settings.queue_prefix}
        )

        async def drained() -> bool:
            return bool((await waited.getJobCounts("completed"))["completed"] == 6)

        await until(drained, what="6 completed")
        finished = int(time.time() * 1000)
        for minute in range(started - started % MINUTE_MS, finished + 1, MINUTE_MS):
            await parts.collector.collect(["waited"], minute_ms=minute)
        # History of a queue that MonitorService does not list: no label may come from it.
        newest = datetime.fromtimestamp((finished - finished % MINUTE_MS) / 1000, tz=UTC)
        await parts.store.write([_ghost_row(newest)])

        text, samples, types = await wait_gateway.scrape()
        promtool_check(text)
        summary = await col_grpc.CollectorServiceStub(channel).SummarizeQueues(
            col_pb.SummarizeQueuesRequest()
        )
        window = {s.queue: s.wait_15m for s in summary.summaries}
        assert window["waited"].samples == 6 and window["ghost"].samples == 3
        assert types["workermon_queue_wait_seconds"] == "gauge"
        assert value(samples, "workermon_queue_wait_jobs_15m", queue="waited") == 6
        for quantile, field in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
            exported = value(samples, "workermon_queue_wait_seconds", queue="waited", quantile=quantile)
            assert exported == pytest.approx(getattr(window["waited"], field) / 1000)
        assert not [labels for (name, labels) in samples if "wait" in name and ("queue", "ghost") in labels]
    finally:
        if worker is not None:
            await worker.close()
        await waited.close()
        await channel.close()


def _ghost_row(minute: datetime) -> SnapshotRow:
    wait = DurationSummary(samples=3, p50_ms=100.0, p95_ms=200.0, p99_ms=300.0, avg_ms=150.0)
    return SnapshotRow(
        queue="ghost",
        minute=minute,
        waiting=0,
        active=0,
        delayed=0,
        prioritized=0,
        waiting_children=0,
        completed=3,
        failed=0,
        paused=False,
        completed_in_minute=3,
        failed_in_minute=0,
        retried_in_minute=0,
        counts_approximate=False,
        completed_cumulative=3,
        failed_cumulative=0,
        collected_at=minute,
        collection_ms=1.0,
        wait=wait,
    )
