"""MonitorService's history reads: a worker's per-minute history passed through from HeartbeatService, and
the wait time a queue carries beside its processing time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_collector.follower import MINUTE_MS
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info

from ..support.suites import LocalSuite, start_local_suite
from .test_service import Suite, fail_and_complete


@pytest.fixture
async def local(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[LocalSuite]:
    running = await start_local_suite(tmp_path, redis, redis_url, prefix, authority)
    yield running
    await running.stop()


@pytest.fixture
def suite(local: LocalSuite, authority: TokenAuthority, redis_url: str) -> Suite:
    return Suite(local.server, local.parts["monitor"], authority, redis_url, local.queue_prefix, [])


def _heartbeat(suite: Suite, role: str) -> hb_grpc.HeartbeatServiceStub:
    channel = open_channel(
        suite.target, suite.authority.mint(f"{role}-1", role, worker="*" if role == "worker" else None)
    )
    suite.channels.append(channel)
    return hb_grpc.HeartbeatServiceStub(channel)


async def test_worker_history_passes_through_with_its_gauges(suite: Suite) -> None:
    report = hb_pb.WorkerReport(
        worker_id="hist-a",
        instance_id="i-1",
        queues=["emails"],
        concurrency=8,
        active_jobs=3,
        gauges=hb_pb.ProcessGauges(cpu_percent=42.5, rss_bytes=123_456_789, custom={"browsers": 2}),
    )
    await _heartbeat(suite, "worker").Beat(hb_pb.BeatRequest(report=report))

    viewer = suite.client("viewer")
    history = await viewer.GetWorkerHistory(pb.GetWorkerHistoryRequest(worker_id="hist-a"))
    assert history.worker_id == "hist-a" and history.step.seconds == 60
    [point] = history.points
    assert (point.active_jobs, point.concurrency) == (3, 8)
    assert point.gauges.cpu_percent == 42.5 and point.gauges.rss_bytes == 123_456_789
    assert dict(point.gauges.custom) == {"browsers": 2.0}
    assert point.time.ToMilliseconds() % 60_000 == 0

    # The range is passed on: a window ending before the point's minute holds nothing.
    before = timestamp_pb2.Timestamp()
    before.FromMilliseconds(point.time.ToMilliseconds())
    early = timestamp_pb2.Timestamp()
    early.FromMilliseconds(point.time.ToMilliseconds() - 3_600_000)
    empty = await viewer.GetWorkerHistory(
        pb.GetWorkerHistoryRequest(worker_id="hist-a", start_time=early, end_time=before)
    )
    assert list(empty.points) == []


async def test_worker_history_errors_keep_their_codes(suite: Suite) -> None:
    viewer = suite.client("viewer")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.GetWorkerHistory(pb.GetWorkerHistoryRequest(worker_id="nobody"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(caught.value)
    assert info is not None and info.reason == "WORKER_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.GetWorkerHistory(pb.GetWorkerHistoryRequest(worker_id="no spaces"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "worker_id" in (caught.value.details() or "")


async def test_queue_carries_wait_time_beside_processing_time(suite: Suite, local: LocalSuite) -> None:
    emails = suite.queue("emails")
    collector = local.parts["collector"].collector
    try:
        started = int(time.time() * 1000)
        await fail_and_complete(suite, emails, completed=5, failed=0)
        finished = int(time.time() * 1000)
        # Every minute the jobs finished in, so the newest row holds some of them wherever minutes turned.
        for minute in range(started - started % MINUTE_MS, finished + 1, MINUTE_MS):
            await collector.collect(["emails"], minute_ms=minute)
        await suite.parts.board.refresh()
        viewer = suite.client("viewer")
        queue = (await viewer.GetQueue(pb.GetQueueRequest(queue="emails"))).queue
        assert queue.processing.samples > 0
        assert queue.wait.samples == queue.processing.samples
        assert 0 <= queue.wait.p50_ms <= queue.wait.p95_ms <= queue.wait.p99_ms
        assert queue.wait.avg_ms > 0
        listed = await viewer.ListQueues(pb.ListQueuesRequest(name_prefix="emails"))
        assert [q.wait == queue.wait for q in listed.queues] == [True]
    finally:
        await emails.close()


async def test_trend_ranges_from_an_hour_to_thirty_days(suite: Suite, local: LocalSuite) -> None:
    emails = suite.queue("emails")
    try:
        await fail_and_complete(suite, emails, completed=2, failed=1)
        now = int(time.time() * 1000)
        await local.parts["collector"].collector.collect(["emails"], minute_ms=now - now % MINUTE_MS)
        viewer = suite.client("viewer")
        expected = {1: ("minute", 60, 60), 6: ("minute", 60, 360), 24: ("minute", 60, 1440)}
        expected |= {24 * 7: ("hourly", 3600, 168), 24 * 30: ("hourly", 3600, 720)}
        for hours, (resolution, step, buckets) in expected.items():
            trend = await viewer.GetQueueTrend(pb.GetQueueTrendRequest(queue="emails", hours=hours))
            assert (trend.resolution, trend.step.seconds) == (resolution, step), hours
            # Epoch-aligned buckets: the range's first and last may be partial, adding one.
            assert buckets <= len(trend.points) <= buckets + 1, hours
            # The minute just collected is in the newest bucket (or the one before, had a minute turned
            # since), also where rollups do not reach yet.
            assert any(p.has_data for p in trend.points[-2:]), hours
            assert sum(p.failed for p in trend.points) == 1, hours
    finally:
        await emails.close()
