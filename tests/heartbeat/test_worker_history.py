"""Per-worker history: one point per minute a worker beat in, bounded, expiring with the worker, kept in
Redis so a restarted (or another) replica serves and extends the same series."""

from __future__ import annotations

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import timestamp_pb2

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info
from workermon_heartbeat.store import Registry

from ..support.heartbeat import Running, report, start_heartbeat


def _loaded(worker_id: str, active: int, cpu: float = 0.0, rss: int = 0, **custom: float) -> pb.WorkerReport:
    return report(
        worker_id,
        active_jobs=active,
        gauges=pb.ProcessGauges(cpu_percent=cpu, rss_bytes=rss, custom=custom),
    )


def _history_key(live: Running, worker_id: str) -> str:
    return live.servicer.registry.root + ":wh:" + worker_id


async def _history(live: Running, worker_id: str, **fields: object) -> pb.GetWorkerHistoryResponse:
    request = pb.GetWorkerHistoryRequest(worker_id=worker_id, **fields)  # type: ignore[arg-type]
    reply: pb.GetWorkerHistoryResponse = await live.client("viewer").GetWorkerHistory(request)
    return reply


def _stamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMilliseconds(int(seconds * 1000))
    return stamp


async def test_one_point_per_minute_from_the_first_beat_in_it(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    minute0 = clock.now
    await client.Beat(pb.BeatRequest(report=_loaded("w-1", 2, cpu=12.5, rss=100_000_000, browsers=3)))
    for active in (3, 4, 5):
        clock.advance(10)
        await client.Beat(pb.BeatRequest(report=_loaded("w-1", active, cpu=50.0)))
    clock.advance(30)  # 70 s after the first beat: the next minute
    await client.Beat(pb.BeatRequest(report=_loaded("w-1", 1, cpu=5.0, rss=200_000_000)))
    clock.advance(10)
    await client.Beat(pb.BeatRequest(report=_loaded("w-1", 9)))

    history = await _history(hb, "w-1")
    assert history.worker_id == "w-1"
    assert history.step.seconds == 60
    assert [p.time.ToMilliseconds() for p in history.points] == [
        int(minute0 * 1000),
        int((minute0 + 60) * 1000),
    ]
    first, second = history.points
    assert (first.active_jobs, first.concurrency) == (2, 4)
    assert first.gauges.cpu_percent == 12.5 and first.gauges.rss_bytes == 100_000_000
    assert dict(first.gauges.custom) == {"browsers": 3.0}
    assert (second.active_jobs, second.gauges.cpu_percent, second.gauges.rss_bytes) == (1, 5.0, 200_000_000)


async def test_a_minute_without_beats_has_no_point_and_range_filters(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    start = clock.now
    for minute in (0, 1, 4):
        clock.now = start + minute * 60 + 5
        await client.Beat(pb.BeatRequest(report=_loaded("w-gap", minute)))
    history = await _history(hb, "w-gap")
    assert [p.active_jobs for p in history.points] == [0, 1, 4]
    ranged = await _history(hb, "w-gap", start_time=_stamp(start + 60), end_time=_stamp(start + 240))
    assert [p.active_jobs for p in ranged.points] == [1]


async def test_history_is_bounded_to_a_day_of_minutes(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    start = clock.now
    for minute in range(1445):
        clock.now = start + minute * 60
        await registry.beat(_loaded("w-long", minute % 1000), [])
    assert await redis.llen(_history_key(hb, "w-long")) == 1440
    history = await _history(hb, "w-long")
    assert len(history.points) == 1440
    # The oldest five minutes were trimmed: the series starts at minute 5, oldest first.
    assert history.points[0].time.ToMilliseconds() == int((start + 5 * 60) * 1000)
    assert history.points[-1].time.ToMilliseconds() == int((start + 1444 * 60) * 1000)


async def test_configured_length_bounds_the_list(
    redis_url: str, prefix: str, authority: TokenAuthority, clock: FakeClock, redis: aioredis.Redis
) -> None:
    live = await start_heartbeat(redis_url, prefix, authority, clock, worker_history_minutes=3)
    try:
        for _ in range(6):
            await live.servicer.registry.beat(_loaded("w-short", 1), [])
            clock.advance(60)
        assert await redis.llen(_history_key(live, "w-short")) == 3
    finally:
        await live.stop()


async def test_history_expires_with_the_worker(hb: Running, redis: aioredis.Redis, clock: FakeClock) -> None:
    client = hb.client("worker")
    await client.Beat(pb.BeatRequest(report=_loaded("w-old", 1)))
    key = _history_key(hb, "w-old")
    # The list expires after the registry's retention unless the worker beats again...
    ttl = await redis.ttl(key)
    assert 24 * 3600 - 5 <= ttl <= 24 * 3600
    assert ttl == await redis.ttl(hb.servicer.registry.root + ":w:w-old")
    # ...and goes with the worker when the sweep forgets it.
    clock.advance(24 * 3600 + 1)
    await client.Beat(pb.BeatRequest(report=_loaded("w-fresh", 1)))
    await hb.servicer.registry.sweep()
    assert await redis.exists(key) == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _history(hb, "w-old")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(caught.value)
    assert info is not None and info.reason == "WORKER_NOT_FOUND"


async def test_survives_a_restart_and_is_not_written_twice_in_a_minute(
    hb: Running, redis_url: str, prefix: str, authority: TokenAuthority, clock: FakeClock
) -> None:
    await hb.client("worker").Beat(pb.BeatRequest(report=_loaded("w-r", 7)))
    await hb.stop()
    restarted = await start_heartbeat(redis_url, prefix, authority, clock)
    try:
        # Same minute, a process that never saw the first beat: the point already written stands.
        clock.advance(20)
        await restarted.client("worker").Beat(pb.BeatRequest(report=_loaded("w-r", 8)))
        history = await _history(restarted, "w-r")
        assert [p.active_jobs for p in history.points] == [7]
        clock.advance(60)
        await restarted.client("worker").Beat(pb.BeatRequest(report=_loaded("w-r", 9)))
        assert [p.active_jobs for p in (await _history(restarted, "w-r")).points] == [7, 9]
    finally:
        await restarted.stop()


async def test_a_lagging_clock_neither_repeats_nor_reorders_minutes(
    hb: Running, clock: FakeClock, prefix: str
) -> None:
    registry = hb.servicer.registry
    await registry.beat(_loaded("w-skew", 1), [])
    clock.advance(60)
    await registry.beat(_loaded("w-skew", 2), [])
    # A replica whose clock is a minute behind: the minute it sees is already history.
    lagging = Registry(
        registry.redis, hb.suite.settings.redis_prefix, registry.config, lambda: clock.now - 60
    )
    await lagging.beat(_loaded("w-skew", 3), [])
    history = await _history(hb, "w-skew")
    assert [p.active_jobs for p in history.points] == [1, 2]


async def test_disabled_history_writes_nothing(
    redis_url: str, prefix: str, authority: TokenAuthority, clock: FakeClock, redis: aioredis.Redis
) -> None:
    live = await start_heartbeat(redis_url, prefix, authority, clock, worker_history_minutes=0)
    try:
        await live.client("worker").Beat(pb.BeatRequest(report=_loaded("w-none", 1)))
        assert await redis.exists(_history_key(live, "w-none")) == 0
        assert list((await _history(live, "w-none")).points) == []
    finally:
        await live.stop()


async def test_bad_requests_name_the_field(hb: Running, clock: FakeClock) -> None:
    await hb.client("worker").Beat(pb.BeatRequest(report=_loaded("w-1", 1)))
    now = _stamp(clock.now)
    cases = [
        (pb.GetWorkerHistoryRequest(worker_id=""), "worker_id"),
        (pb.GetWorkerHistoryRequest(worker_id="bad id!"), "worker_id"),
        (pb.GetWorkerHistoryRequest(worker_id="w-1", start_time=now, end_time=now), "end_time"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await hb.client("viewer").GetWorkerHistory(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (caught.value.details() or "")


async def test_workers_cannot_read_history(hb: Running) -> None:
    await hb.client("worker").Beat(pb.BeatRequest(report=_loaded("w-1", 1)))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await hb.client("worker").GetWorkerHistory(pb.GetWorkerHistoryRequest(worker_id="w-1"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
