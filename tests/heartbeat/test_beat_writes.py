"""A steady beat writes only what moved: the Beat script's report of its writes, checked against the keys.

Identity fields are tampered with in Redis between beats: a field the script does not rewrite keeps
the tampered value, one it rewrites gets the worker's value back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_exceptions

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_heartbeat.store import Beat, BeatOutcome, Registry, fingerprint

from ..support.heartbeat import Running, report, worker_view


def _keys(registry: Registry, worker_id: str) -> tuple[str, str]:
    return registry.root + ":w:" + worker_id, registry.root + ":ids"


async def _events(redis: aioredis.Redis, registry: Registry) -> list[tuple[bytes, bytes]]:
    entries: Any = await redis.xrange(registry.root + ":events")
    return [(fields[b"type"], fields[b"reason"]) for _id, fields in entries]


async def test_steady_beat_writes_report_and_times_but_not_identity(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    wkey, ids = _keys(registry, "w-1")
    first = await registry.beat(report("w-1", queues=("emails", "reports"), processed_total=1), [])
    assert first.identity_written and first.report_written
    await redis.hset(wkey, "host", "tampered")
    await redis.zadd(ids, {"w-1": 7})
    events_before = await _events(redis, registry)

    clock.advance(5)
    moved = report("w-1", queues=("reports", "emails"), processed_total=2)
    steady = await registry.beat(moved, [])

    assert not steady.identity_written and steady.report_written
    assert await redis.hget(wkey, "host") == b"tampered"
    assert await redis.zscore(ids, "w-1") == 7
    assert await redis.hget(wkey, "info") == moved.SerializeToString()
    now_ms = int(clock.now * 1000)
    assert await redis.hget(wkey, "last") == str(now_ms).encode()
    deadline = now_ms + 30_000
    assert await redis.zscore(registry.root + ":deadline", "w-1") == deadline
    for queue in ("emails", "reports"):
        assert await redis.zscore(f"{registry.root}:q:{queue}", "w-1") == deadline
    assert await _events(redis, registry) == events_before
    assert (await worker_view(hb, "w-1")).report.processed_total == 2


async def test_unchanged_report_is_not_rewritten(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    wkey, _ = _keys(registry, "w-1")
    same = report("w-1", processed_total=3)
    await registry.beat(same, [])
    clock.advance(5)
    again = await registry.beat(same, [])
    assert not again.identity_written and not again.report_written
    assert await redis.hget(wkey, "info") == same.SerializeToString()
    assert await redis.hget(wkey, "last") == str(int(clock.now * 1000)).encode()
    assert (await worker_view(hb, "w-1")).status == pb.WORKER_STATUS_ONLINE


async def test_changed_identity_is_rewritten_and_announced(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    wkey, _ = _keys(registry, "w-1")
    await registry.beat(report("w-1", queues=("emails", "reports")), [])
    await redis.hset(wkey, "host", "tampered")

    clock.advance(5)
    changed = report("w-1", queues=("emails", "billing"), labels={"team": "payments"})
    outcome = await registry.beat(changed, [])

    assert outcome.identity_written and outcome.report_written
    assert await redis.hget(wkey, "host") == b"host-a"
    assert await redis.hget(wkey, "fp") == fingerprint(changed).encode()
    assert await redis.hget(wkey, "queues") == b"billing\nemails"
    assert await redis.zscore(registry.root + ":q:reports", "w-1") is None
    assert await redis.zscore(registry.root + ":q:billing", "w-1") is not None
    assert (await _events(redis, registry))[-1] == (b"UPDATED", b"changed")
    assert dict((await worker_view(hb, "w-1")).report.labels) == {"team": "payments"}


async def test_back_online_clears_the_offline_reason_without_rewriting_identity(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    wkey, _ = _keys(registry, "w-1")
    await registry.beat(report("w-1"), [])
    assert await registry.goodbye("w-1", "inst-1", "deploy")
    assert await redis.hget(wkey, "off") == b"goodbye: deploy"
    await redis.hset(wkey, "host", "tampered")

    clock.advance(1)
    back = await registry.beat(report("w-1"), [])

    assert not back.identity_written
    assert await redis.hget(wkey, "off") is None
    assert await redis.hget(wkey, "host") == b"tampered"
    assert (await _events(redis, registry))[-1] == (b"ONLINE", b"back online")
    assert (await worker_view(hb, "w-1")).status == pb.WORKER_STATUS_ONLINE


async def test_forgotten_worker_is_written_whole_again(
    hb: Running, redis: aioredis.Redis, clock: FakeClock
) -> None:
    registry = hb.servicer.registry
    wkey, ids = _keys(registry, "w-1")
    await registry.beat(report("w-1"), [])
    clock.advance(24 * 3600 + 1)
    await registry.sweep()  # the service's own sweeper may have run first
    assert await redis.exists(wkey) == 0

    again = await registry.beat(report("w-1"), [])

    assert again.identity_written and again.report_written
    now = str(int(clock.now * 1000)).encode()
    assert await redis.hmget(wkey, ["host", "first", "last"]) == [b"host-a", now, now]
    assert await redis.zscore(ids, "w-1") == 0
    assert (await _events(redis, registry))[-1] == (b"ONLINE", b"first beat")


async def test_beats_sent_together_share_a_script_call_and_a_damaged_key_fails_only_its_beat(
    hb: Running, redis: aioredis.Redis
) -> None:
    registry = hb.servicer.registry
    await redis.set(registry.root + ":w:broken", "not a hash")
    calls: list[int] = []
    record = registry._beats._flush

    async def counted(beats: list[Beat]) -> Sequence[BeatOutcome | Exception]:
        calls.append(len(beats))
        return await record(beats)

    registry._beats._flush = counted
    outcomes = await asyncio.gather(
        *(registry.beat(report(name), []) for name in ("w-1", "broken", "w-2")), return_exceptions=True
    )

    assert calls == [3]
    assert isinstance(outcomes[1], redis_exceptions.ResponseError) and "WRONGTYPE" in str(outcomes[1])
    for name, outcome in (("w-1", outcomes[0]), ("w-2", outcomes[2])):
        assert isinstance(outcome, BeatOutcome) and outcome.identity_written
        assert (await worker_view(hb, name)).status == pb.WORKER_STATUS_ONLINE
