"""Stalled jobs per minute: a Node BullMQ worker killed mid-job, its job found stalled by another
worker, counted from the queue's `stalled` event into the minute's row, the hourly rollup and the trend."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.bull import delete_prefix, until
from tests.support.nodejs import start_produce
from workermon_collector.collector import Collector
from workermon_collector.follower import MINUTE_MS, EventFollower, minute_of
from workermon_collector.store import SnapshotStore
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.classify import FailureClassifier

QUEUE = "stalls"


@pytest.fixture
async def bull_prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    name = "wmst-" + uuid.uuid4().hex[:10]
    yield name
    await delete_prefix(redis, name)


# BullMQ 6, and BullMQ 5 (npm alias `bullmq5`): both write the same `stalled` event.
@pytest.mark.parametrize("package", ["bullmq", "bullmq5"])
async def test_stalled_events_are_counted_per_minute_and_in_the_trend(
    redis: aioredis.Redis, redis_url: str, prefix: str, bull_prefix: str, engine: AsyncEngine, package: str
) -> None:
    backend = BullMQBackend(redis, prefix=bull_prefix, queues=[QUEUE], discover=False)
    follower = EventFollower(backend, redis, prefix, FailureClassifier())
    store = SnapshotStore(engine)
    collector = Collector(backend, follower, store, redis, prefix)
    await follower.follow(QUEUE, int(time.time() * 1000))
    started = int(time.time() * 1000)

    stuck = await start_produce(redis_url, bull_prefix, QUEUE, "stall", package, script="limits.mjs")
    job_id = stuck.ready["ids"]["job"]
    os.kill(stuck.ready["pid"], signal.SIGKILL)
    await stuck.proc.wait()
    rescuer = await start_produce(redis_url, bull_prefix, QUEUE, "recover", package, script="limits.mjs")
    try:

        async def completed() -> bool:
            return await redis.zscore(f"{bull_prefix}:{QUEUE}:completed", job_id) is not None

        await until(completed, what="the stalled job recovered and completed")
    finally:
        await rescuer.stop()
    finished = int(time.time() * 1000)

    rows = []
    for minute in range(minute_of(started), minute_of(finished) + MINUTE_MS, MINUTE_MS):
        result = await collector.collect([QUEUE], minute_ms=minute)
        assert not result.errors, result.errors
        rows += result.rows
    assert sum(r.stalled_in_minute for r in rows) == 1
    assert sum(r.completed_in_minute for r in rows) == 1
    # The stall is not a retried attempt: BullMQ's `waiting(prev=active)` + `stalled` pair.
    assert sum(r.retried_in_minute for r in rows) == 0

    stored = await store.latest(QUEUE)
    assert stored is not None
    start = datetime.fromtimestamp(minute_of(started) / 1000, tz=UTC)
    end = datetime.fromtimestamp(minute_of(finished) / 1000, tz=UTC) + timedelta(minutes=1)
    points, _ = await store.query(QUEUE, start, end, timedelta(minutes=1))
    assert sum(p.stalled for p in points) == 1
    wide, _ = await store.query(QUEUE, start - timedelta(minutes=4), end, timedelta(minutes=5))
    assert sum(p.stalled for p in wide) == 1
