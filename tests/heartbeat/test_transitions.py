"""Transitions are emitted exactly once, even with two replicas beating and sweeping at the same time."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.auth import TokenAuthority

from ..support.heartbeat import Running, report, start_heartbeat


async def _watch(client, after: str, count: int) -> list[pb.WatchWorkersResponse]:  # type: ignore[no-untyped-def]
    call = client.WatchWorkers(pb.WatchWorkersRequest(after_event_id=after))
    events = []
    try:
        while len(events) < count:
            events.append(await asyncio.wait_for(call.read(), 10))
    finally:
        call.cancel()
    return events


async def test_watch_reports_online_updated_offline(hb: Running, clock: FakeClock) -> None:
    worker, viewer = hb.client("worker"), hb.client("viewer")
    await worker.Beat(pb.BeatRequest(report=report("w-1")))
    await worker.Beat(pb.BeatRequest(report=report("w-1")))  # no change: no event
    await worker.Beat(pb.BeatRequest(report=report("w-1", state=pb.WORKER_STATE_QUIET)))
    await worker.Beat(pb.BeatRequest(report=report("w-1", instance_id="inst-2")))
    await worker.Goodbye(pb.GoodbyeRequest(worker_id="w-1", instance_id="inst-2", reason="deploy"))
    events = await _watch(viewer, "0-0", 4)
    assert [(e.type, e.reason) for e in events] == [
        (pb.WORKER_EVENT_TYPE_ONLINE, "first beat"),
        (pb.WORKER_EVENT_TYPE_UPDATED, "changed"),
        (pb.WORKER_EVENT_TYPE_UPDATED, "restarted"),
        (pb.WORKER_EVENT_TYPE_OFFLINE, "goodbye: deploy"),
    ]
    assert events[-1].worker.status == pb.WORKER_STATUS_OFFLINE
    # Resuming after an event id yields only what followed it.
    tail = await _watch(viewer, events[1].event_id, 2)
    assert [e.event_id for e in tail] == [e.event_id for e in events[2:]]


async def test_live_watch_sees_new_transitions(hb: Running, clock: FakeClock) -> None:
    worker, viewer = hb.client("worker"), hb.client("viewer")
    watching = asyncio.create_task(_watch(viewer, "", 2))
    await asyncio.sleep(0.3)
    await worker.Beat(pb.BeatRequest(report=report("w-live")))
    clock.advance(31)
    events = await watching
    assert [(e.type, e.worker_id) for e in events] == [
        (pb.WORKER_EVENT_TYPE_ONLINE, "w-live"),
        (pb.WORKER_EVENT_TYPE_OFFLINE, "w-live"),
    ]
    assert events[1].reason == "missed beats"


async def test_two_replicas_never_double_emit(
    hb: Running,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    clock: FakeClock,
) -> None:
    other = await start_heartbeat(redis_url, prefix, authority, clock)
    try:
        a, b = hb.client("worker"), other.client("worker")
        workers = [f"w-{i:03d}" for i in range(200)]
        # Both replicas receive beats for every worker at once (the SDK reconnecting to another replica).
        await asyncio.gather(*(c.Beat(pb.BeatRequest(report=report(w))) for w in workers for c in (a, b)))
        clock.advance(31)
        # Both replicas sweep concurrently, many times, and late beats race with the sweeps.
        await asyncio.gather(
            *(r.servicer.registry.sweep() for r in (hb, other) for _ in range(5)),
            *(b.Beat(pb.BeatRequest(report=report(w))) for w in workers[:50]),
        )
        stream = await redis.xrange("{" + prefix + "}:hb:events")
        kinds: dict[str, list[str]] = {}
        for _id, fields in stream:
            kinds.setdefault(fields[b"worker"].decode(), []).append(fields[b"type"].decode())
        for w in workers[:50]:
            # Whether the sweep or the late beat ran first, OFFLINE is announced once, then ONLINE again.
            assert kinds[w] == ["ONLINE", "OFFLINE", "ONLINE"], (w, kinds[w])
        for w in workers[50:]:
            assert kinds[w] == ["ONLINE", "OFFLINE"], (w, kinds[w])
        summary = await hb.client("viewer").GetWorkerSummary(pb.GetWorkerSummaryRequest())
        assert (summary.online, summary.offline) == (50, 150)
    finally:
        await other.stop()
