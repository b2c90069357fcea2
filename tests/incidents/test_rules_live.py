"""Each queue rule end to end on a real BullMQ queue: the collector reads the queue and writes its minute
rows, IncidentService raises the incident from those rows, and the incident says what the queue holds.

A hand-moved clock stands for the minutes going by (job counts are read live from the queue), so a rule
that needs several minutes does not take them. SLOW_PROCESSING needs a baseline of earlier minutes: that
history is written first, and the minute judged is the real queue's, its jobs really slow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker

from tests.support.bull import until
from tests.support.fakes import FakeClock
from tests.support.suites import LocalSuite, start_local_suite
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon_collector.follower import MINUTE_MS, minute_of
from workermon_collector.rows import DurationSummary, SnapshotRow
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel

BACKLOG, STUCK, NO_WORKERS, SLOW = "rule-backlog", "rule-stuck", "rule-no-workers", "rule-slow"
# Per queue: a low backlog threshold (and not "stuck" before it grows); no pending period where the
# default has one.
RULES = {
    BACKLOG: {"backlog_threshold": 10, "stuck_minutes": 60},
    NO_WORKERS: {"no_workers_pending_minutes": 0},
}


@dataclass
class Live:
    """The suite on a hand-moved clock, an operator's IncidentService client, and queues by name."""

    suite: LocalSuite
    clock: FakeClock
    incidents: pb_grpc.IncidentServiceStub
    redis_url: str

    @contextlib.asynccontextmanager
    async def queue(self, name: str) -> AsyncIterator[Queue]:
        """A queue of the suite's prefix, removed with its jobs afterwards."""
        queue = Queue(name, {"connection": self.redis_url, "prefix": self.suite.queue_prefix})
        try:
            yield queue
        finally:
            await queue.obliterate({"force": True})
            await queue.close()

    async def cycle(self, minute_ms: int) -> None:
        """Collect `minute_ms` as the scheduled cycle would just after it ends, then evaluate it."""
        self.clock.now = max(self.clock.now, (minute_ms + MINUTE_MS) / 1000 + 1)
        result = await self.suite.parts["collector"].collector.collect()
        assert int(result.minute.timestamp() * 1000) == minute_ms and not result.errors, result.errors
        await self.evaluate(minute_ms)

    async def evaluate(self, minute_ms: int) -> None:
        request = pb.EvaluateRequest()
        request.minute_time.FromMilliseconds(minute_ms)
        await self.incidents.Evaluate(request)

    async def active(self, kind: pb.IncidentType.ValueType, queue: str = "") -> list[pb.Incident]:
        """The ACTIVE incidents of one type (and queue)."""
        page = await self.incidents.ListIncidents(
            pb.ListIncidentsRequest(type=kind, queue=queue, open_only=True)
        )
        return [i for i in page.incidents if i.status == pb.INCIDENT_STATUS_ACTIVE]


@pytest.fixture
async def live(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[Live]:
    clock = FakeClock(time.time())
    suite = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "collector", "monitor", "incidents"),
        clock=clock,
        incident_eval_interval_seconds=3600,
        backlog_pending_minutes=0,
        stuck_minutes=2,
        stats_stale_minutes=2,
        slow_processing_pending_minutes=0,
        slow_processing_floor_ms=50,
        incident_rules=json.dumps(RULES),
    )
    channel = open_channel(suite.target, authority.mint("olivia", "operator"))
    try:
        yield Live(suite, clock, pb_grpc.IncidentServiceStub(channel), redis_url)
    finally:
        await channel.close()
        await suite.stop()


def _minute_now() -> int:
    return minute_of(int(time.time() * 1000))


async def _add(queue: Queue, count: int) -> None:
    for n in range(count):
        await queue.add("job", {"n": n})


async def test_a_growing_backlog(live: Live) -> None:
    async with live.queue(BACKLOG) as queue:
        first = _minute_now()
        await _add(queue, 5)
        await live.cycle(first)
        assert await live.active(pb.INCIDENT_TYPE_QUEUE_BACKLOG, BACKLOG) == []  # 5 waiting: under 10
        await _add(queue, 15)
        await live.cycle(first + MINUTE_MS)
        [incident] = await live.active(pb.INCIDENT_TYPE_QUEUE_BACKLOG, BACKLOG)
        assert incident.affected_jobs == 20 and incident.threshold == 10
        assert "20 jobs waiting" in incident.description and "up from 5" in incident.description


async def test_a_stuck_queue(live: Live) -> None:
    async with live.queue(STUCK) as queue:
        first = _minute_now()
        await _add(queue, 3)
        await live.cycle(first)
        assert await live.active(pb.INCIDENT_TYPE_QUEUE_BACKLOG, STUCK) == []  # one minute: not yet
        await live.cycle(first + MINUTE_MS)
        [incident] = await live.active(pb.INCIDENT_TYPE_QUEUE_BACKLOG, STUCK)
        assert incident.title == f"Queue {STUCK} is stuck" and incident.affected_jobs == 3


async def test_waiting_jobs_and_no_worker(live: Live) -> None:
    async with live.queue(NO_WORKERS) as queue:
        await _add(queue, 4)
        await live.cycle(_minute_now())
        [incident] = await live.active(pb.INCIDENT_TYPE_WORKER_DOWN, NO_WORKERS)
        assert incident.title == f"No workers for {NO_WORKERS}" and incident.affected_jobs == 4


async def test_statistics_gone_stale(live: Live) -> None:
    async with live.queue(NO_WORKERS) as queue:
        await _add(queue, 1)
        minute = _minute_now()
        await live.cycle(minute)
        assert await live.active(pb.INCIDENT_TYPE_STATS_STALE) == []
        # Three minutes on and no cycle since: older than the 2 minutes allowed.
        live.clock.advance(3 * 60)
        await live.evaluate(minute + 3 * MINUTE_MS)
        [incident] = await live.active(pb.INCIDENT_TYPE_STATS_STALE)
        assert incident.threshold == 2 and incident.value >= 2


def _baseline_row(queue: str, minute: datetime) -> SnapshotRow:
    """A past minute of the queue: 10 jobs done, processing p95 10 ms."""
    return SnapshotRow(
        queue=queue, minute=minute, waiting=0, active=0, delayed=0, prioritized=0, waiting_children=0,
        completed=0, failed=0, paused=False, completed_in_minute=10, failed_in_minute=0,
        retried_in_minute=0, counts_approximate=False, completed_cumulative=0, failed_cumulative=0,
        collected_at=minute + timedelta(minutes=1), collection_ms=1.0,
        processing=DurationSummary(samples=10, p50_ms=5, p95_ms=10, p99_ms=12, avg_ms=6),
        online_workers=1,
    )  # fmt: skip


async def test_slow_processing(live: Live) -> None:
    async def slow(job: Job, token: str) -> Any:
        await asyncio.sleep(0.3)
        return "ok"

    async with live.queue(SLOW) as queue:
        worker = Worker(SLOW, slow, {"connection": live.redis_url, "prefix": live.suite.queue_prefix})
        try:
            await _add(queue, 4)

            async def done() -> bool:
                return bool((await queue.getJobCounts("completed"))["completed"] == 4)

            await until(done, what="the slow jobs done")
        finally:
            await worker.close()
        # The minute the last of them finished in: the one judged, after 35 minutes of fast history.
        judged = minute_of(max(int(job.finishedOn) for job in await queue.getJobs(["completed"])))
        history = [
            _baseline_row(SLOW, datetime.fromtimestamp((judged - m * MINUTE_MS) / 1000, tz=UTC))
            for m in range(35, 0, -1)
        ]
        assert all(await live.suite.parts["collector"].store.write(history))
        await live.cycle(judged)
        [incident] = await live.active(pb.INCIDENT_TYPE_SLOW_PROCESSING, SLOW)
        # Three times the 10 ms baseline is under the 50 ms floor: the floor is the threshold.
        assert incident.threshold == 50 and incident.value >= 250
        assert "baseline 10 ms" in incident.description
