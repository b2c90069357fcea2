"""The README's example worker runs as written: it comes online, works, and says goodbye on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bullmq import Queue

from tests.support.bull import until
from tests.support.heartbeat import Running, maybe_worker_view, start_heartbeat
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.auth import TokenAuthority

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "worker.py"


@pytest.fixture
async def live(redis_url: str, prefix: str, authority: TokenAuthority) -> AsyncIterator[Running]:
    running = await start_heartbeat(redis_url, prefix, authority, time.time, beat_interval_seconds=1)
    yield running
    await running.stop()


async def test_example_worker(live: Running, redis_url: str) -> None:
    queue_name = "wm-example-" + uuid.uuid4().hex[:6]
    worker_id = "example-" + uuid.uuid4().hex[:6]
    env = {
        **os.environ,
        "WORKERMON_TOKEN": live.authority.mint(worker_id, "worker", worker=worker_id),
        "WORKERMON_TARGET": live.target,
        "QUEUE_REDIS_URL": redis_url,
        "QUEUE": queue_name,
        "WORKER_ID": worker_id,
    }
    proc = await asyncio.create_subprocess_exec(sys.executable, str(EXAMPLE), env=env)
    queue = Queue(queue_name, {"connection": redis_url})
    try:
        job = await queue.add("hello", {"n": 1})

        async def online_and_done() -> bool:
            w = await maybe_worker_view(live, worker_id)
            return w is not None and w.status == pb.WORKER_STATUS_ONLINE and w.report.processed_total >= 1

        await until(online_and_done, limit=30, what="example worker online with one job done")
        assert await queue.getJobState(job.id) == "completed"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        view = await maybe_worker_view(live, worker_id)
        assert view is not None and view.status == pb.WORKER_STATUS_OFFLINE
        assert view.offline_reason == "goodbye: signal"
    finally:
        if proc.returncode is None:
            proc.kill()
        await queue.obliterate({"force": True})
        await queue.close()
