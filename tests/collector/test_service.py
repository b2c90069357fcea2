"""CollectorService over gRPC, and the taskiq schedule running the collection."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Queue
from google.protobuf import duration_pb2, timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.suites import start_modules
from workermon.collector.v1 import collector_service_pb2 as pb
from workermon.collector.v1 import collector_service_pb2_grpc as pb_grpc
from workermon_collector import service
from workermon_collector.schedule import COLLECT_TASK, build_schedule
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info
from workermon_core.server import SuiteServer


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[Queue]:
    q = Queue("wm-svc-" + uuid.uuid4().hex[:8], {"connection": redis_url})
    yield q
    await q.obliterate({"force": True})
    await q.close()


@pytest.fixture
async def served(
    redis: aioredis.Redis,
    prefix: str,
    engine: AsyncEngine,
    authority: TokenAuthority,
    queue: Queue,
    redis_url: str,
) -> AsyncIterator[tuple[SuiteServer, service.CollectorParts]]:
    # Discovery off and one configured queue: the shared test Redis holds other tests' queues too.
    suite = await start_modules(
        "collector",
        redis_url=redis_url,
        authority=authority,
        database_url=engine.url.render_as_string(hide_password=False),
        migrate_first=False,
        redis_prefix=prefix,
        queues=queue.name,
        discover_queues=False,
        heartbeat_target="127.0.0.1:1",
        collector_schedule=False,
    )
    assert suite.server is not None
    yield suite.server, suite.parts("collector")
    await suite.stop()


_channels: list[grpc.aio.Channel] = []


def _client(server: SuiteServer, authority: TokenAuthority, role: str) -> pb_grpc.CollectorServiceStub:
    # Keep the channel referenced: a garbage-collected aio channel closes under its stub.
    channel = open_channel(f"127.0.0.1:{server.port}", authority.mint("t", role))
    _channels.append(channel)
    return pb_grpc.CollectorServiceStub(channel)


def _ts(moment: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


async def test_collect_now_query_and_status(
    served: tuple[SuiteServer, service.CollectorParts], authority: TokenAuthority, queue: Queue
) -> None:
    server, _parts = served
    await queue.add("x", {})
    operator = _client(server, authority, "operator")
    first = await operator.CollectNow(pb.CollectNowRequest())
    assert [s.queue for s in first.snapshots] == [queue.name]
    assert first.snapshots[0].counts.waiting == 1
    assert not first.snapshots[0].HasField("online_workers")  # heartbeat unreachable: absent, not zero
    again = await operator.CollectNow(pb.CollectNowRequest(queues=[queue.name]))
    assert list(again.already_written) == [queue.name]

    viewer = _client(server, authority, "viewer")
    minute = first.minute_time.ToDatetime(tzinfo=UTC)
    history = await viewer.QuerySnapshots(
        pb.QuerySnapshotsRequest(
            queue=queue.name,
            start_time=_ts(minute - timedelta(minutes=4)),
            end_time=_ts(minute + timedelta(minutes=1)),
            step=duration_pb2.Duration(seconds=60),
        )
    )
    assert history.resolution == "minute"
    assert [p.has_data for p in history.points] == [False, False, False, False, True]
    assert history.points[-1].counts.waiting == 1
    default = await viewer.QuerySnapshots(pb.QuerySnapshotsRequest(queue=queue.name))
    assert len(default.points) in (60, 61) and default.step.seconds == 60  # 61 when now is mid-minute

    status = await viewer.GetCollectorStatus(pb.GetCollectorStatusRequest())
    assert status.queues_covered == 1
    assert status.last_minute_time == first.minute_time

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.CollectNow(pb.CollectNowRequest())
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"queue": ""}, "queue"),
        ({"step": duration_pb2.Duration(seconds=90)}, "step"),
        (
            {
                "start_time": _ts(datetime(2026, 1, 1, tzinfo=UTC)),
                "end_time": _ts(datetime(2026, 3, 1, tzinfo=UTC)),
            },
            "start_time",
        ),
        (
            {
                "start_time": _ts(datetime(2026, 1, 2, tzinfo=UTC)),
                "end_time": _ts(datetime(2026, 1, 1, tzinfo=UTC)),
            },
            "end_time",
        ),
    ],
    ids=["empty-queue", "step-not-minutes", "range-over-31-days", "end-before-start"],
)
async def test_bad_queries_name_the_field(
    served: tuple[SuiteServer, service.CollectorParts],
    authority: TokenAuthority,
    queue: Queue,
    request_fields: dict[str, object],
    field: str,
) -> None:
    server, _ = served
    fields = {"queue": queue.name, **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _client(server, authority, "viewer").QuerySnapshots(pb.QuerySnapshotsRequest(**fields))  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).metadata["field"] == field  # type: ignore[union-attr]


async def test_unknown_queue_is_not_found(
    served: tuple[SuiteServer, service.CollectorParts], authority: TokenAuthority
) -> None:
    server, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _client(server, authority, "viewer").QuerySnapshots(
            pb.QuerySnapshotsRequest(queue="no-such-queue")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_taskiq_task_runs_a_collection(
    served: tuple[SuiteServer, service.CollectorParts], queue: Queue, redis_url: str, prefix: str
) -> None:
    _, parts = served
    await queue.add("x", {})
    plan = build_schedule(redis_url, prefix, parts.collector, parts.maintenance)
    await plan.start()
    try:
        task = plan.broker.find_task(COLLECT_TASK)
        assert task is not None
        await task.kiq()
        deadline = time.monotonic() + 20
        while parts.collector.last is None:
            assert time.monotonic() < deadline, "the receiver did not run the collection"
            await asyncio.sleep(0.1)
        assert [r.queue for r in parts.collector.last.rows] == [queue.name]
        # Both schedules are registered with the scheduler's label source.
        schedules = await plan.scheduler.sources[0].get_schedules()
        assert sorted(s.task_name for s in schedules) == sorted(
            [COLLECT_TASK, "workermon.collector.maintain"]
        )
    finally:
        await plan.stop()
