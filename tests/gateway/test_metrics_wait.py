"""/metrics carries each discovered queue's 15-minute wait time, in the processing time's shape."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from bullmq import Job, Queue, Worker

from tests.support.bull import until
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_collector.follower import MINUTE_MS
from workermon_collector.rows import DurationSummary
from workermon_core.client import open_channel

from ..collector.conftest import RowFactory
from .test_metrics import MetricsGateway, metrics_gateway, promtool_check, value

__all__ = ["metrics_gateway"]


async def test_wait_quantiles_for_discovered_queues_only(metrics_gateway: MetricsGateway) -> None:
    services = metrics_gateway.services
    assert services.suite is not None
    parts = services.suite.parts("collector")
    waited: Queue = metrics_gateway.queue("done")
    channel = open_channel(services.target, metrics_gateway.authority.mint("ops", "viewer"))
    worker: Worker | None = None
    try:
        started = int(time.time() * 1000)
        for i in range(6):
            await waited.add("job", {"i": i})

        async def process(job: Job, token: str) -> Any:
            return "ok"

        # The jobs wait in the queue until a worker starts: every one has a wait time.
        worker = Worker(
            "done", process, {"connection": services.redis_url, "prefix": services.settings.queue_prefix}
        )

        async def drained() -> bool:
            return bool((await waited.getJobCounts("completed"))["completed"] == 6)

        await until(drained, what="6 completed")
        finished = int(time.time() * 1000)
        for minute in range(started - started % MINUTE_MS, finished + 1, MINUTE_MS):
            await parts.collector.collect(["done"], minute_ms=minute)
        # History of a queue that MonitorService does not list: no label may come from it.
        newest = datetime.fromtimestamp((finished - finished % MINUTE_MS) / 1000, tz=UTC)
        wait = DurationSummary(samples=3, p50_ms=100.0, p95_ms=200.0, p99_ms=300.0, avg_ms=150.0)
        await parts.store.write([RowFactory()("ghost", newest, wait=wait)])

        text, samples, types = await metrics_gateway.scrape()
        promtool_check(text)
        summary = await col_grpc.CollectorServiceStub(channel).SummarizeQueues(
            col_pb.SummarizeQueuesRequest()
        )
        window = {s.queue: s.wait_15m for s in summary.summaries}
        assert window["done"].samples == 6 and window["ghost"].samples == 3
        assert types["workermon_queue_wait_seconds"] == "gauge"
        assert value(samples, "workermon_queue_wait_jobs_15m", queue="done") == 6
        for quantile, field in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
            exported = value(samples, "workermon_queue_wait_seconds", queue="done", quantile=quantile)
            assert exported == pytest.approx(getattr(window["done"], field) / 1000)
        assert not [labels for (name, labels) in samples if "wait" in name and ("queue", "ghost") in labels]
    finally:
        if worker is not None:
            await worker.close()
        await waited.close()
        await channel.close()
