"""Jobs removed on completion leave no timestamps: their durations reach the snapshot from the workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from bullmq import Job, Queue

from tests.support.suites import start_modules
from workermon_collector.follower import MINUTE_MS, minute_of
from workermon_collector.migrate import MIGRATIONS
from workermon_core.auth import TokenAuthority
from workermon_core.db import create_engine
from workermon_sdk.bullmq import InstrumentedWorker


async def test_removed_jobs_get_durations_from_worker_sketches(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}"
    await MIGRATIONS.upgrade(url)
    engine = create_engine(url)
    queue = Queue("wm-timings-" + uuid.uuid4().hex[:6], {"connection": redis_url})
    suite = await start_modules(
        ["heartbeat", "collector"],
        redis_url=redis_url,
        authority=authority,
        database_url=url,
        migrate_first=False,
        redis_prefix=prefix,
        beat_interval_seconds=1,
        queues=queue.name,
        discover_queues=False,
        collector_schedule=False,
    )
    server = suite.server
    assert server is not None
    parts = suite.parts("collector")
    # The collector asks HeartbeatService in the same process, over gRPC, like any replica would.

    async def process(job: Job, token: str) -> Any:
        await asyncio.sleep(job.data["ms"] / 1000)
        return None

    worker = InstrumentedWorker(
        queue.name,
        process,
        {"connection": redis_url, "concurrency": 10},
        target=f"127.0.0.1:{server.port}",
        token=authority.mint("w", "worker", worker="*"),
    )
    await worker.start()
    try:
        await parts.collector.follower.follow(queue.name, int(time.time() * 1000))
        started = int(time.time() * 1000)
        for i in range(50):
            await queue.add("gone", {"ms": 20 + (i % 5) * 20}, {"removeOnComplete": True})
        deadline = time.monotonic() + 30
        while worker.heartbeat.timings.pending or worker.stats().processed_total < 50:
            assert time.monotonic() < deadline, "jobs or their timings did not arrive"
            await asyncio.sleep(0.1)
        finished = int(time.time() * 1000)
        samples = 0
        for minute in range(minute_of(started), minute_of(finished) + MINUTE_MS, MINUTE_MS):
            result = await parts.collector.collect([queue.name], minute_ms=minute)
            row = result.rows[0]
            if row.completed_in_minute:
                assert row.duration_source == "workers"
                assert row.processing is not None
                assert row.processing.samples == row.completed_in_minute
                # Jobs slept 20-100 ms: the sketch sees that range (plus scheduling overhead).
                assert 18 <= row.processing.p50_ms <= 150
                samples += row.processing.samples
        assert samples == 50
    finally:
        await worker.close(force=True)
        await suite.stop()
        await queue.obliterate({"force": True})
        await queue.close()
        await engine.dispose()
