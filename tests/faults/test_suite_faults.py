"""The suite as real processes under a workload, while its Redis is killed and brought back, its database
refuses connections for a minute, and the suite itself restarts: nothing is lost, the gateway answers 200
or an honest 503 (never another 5xx), and the log stays quiet while a dependency is gone.

One slow test on purpose: the faults follow each other on one suite, as an operator would meet them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from bullmq import Job, Queue

from tests.support.fakes import TEST_SECRET
from tests.support.heartbeat import beat_once
from tests.support.processes import PostgresDatabase, RedisProcess, SuiteProcess, running, wait_for
from tests.support.webhooks import HttpReceiver, http_receivers
from tests.support.workload import all_done, produce, worker_down_notifications
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_sdk.bullmq import InstrumentedWorker

QUEUE = "faults"
WORKER_ID = "fault-worker"
# A worker that beats once, just before the database goes away, and never again: its WORKER_DOWN
# notification must be sent once, whatever happens after.
SILENT_WORKER_ID = "silent-worker"
REDIS_OUTAGE_SECONDS = 20.0
DATABASE_OUTAGE_SECONDS = 60.0
# After a dependency returns, readiness and pools need a few seconds before every answer is 200 again.
RECOVERY_GRACE_SECONDS = 15.0
# Lines the whole suite may log per second of a dependency outage (one line per loop when it starts
# failing and one when it recovers is the rule; a retry storm logs thousands).
MAX_LOG_LINES_PER_OUTAGE_SECOND = 5.0
# Lines logged once per request (the access log, a request refused with 503) grow with the traffic, not
# with the outage: they are not what a retry storm is made of.
PER_REQUEST_EVENTS = frozenset({"http_request", "rpc_unavailable", "rpc_refused"})


@dataclass
class Outage:
    """A window in which a dependency was gone (time.monotonic())."""

    name: str
    start: float
    end: float = float("inf")


@dataclass
class Watch:
    """Every gateway answer while the faults happen."""

    answers: list[tuple[float, str, int]] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)

    def excused(self, at: float) -> bool:
        """True while a dependency is gone or just back."""
        return any(o.start <= at <= o.end + RECOVERY_GRACE_SECONDS for o in self.outages)


def _gateway(suite: SuiteProcess, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=suite.http_url, headers=headers, timeout=15)


async def _watch_gateway(suite: SuiteProcess, token: str, watch: Watch) -> None:
    paths = ("/api/v1/overview", "/api/v1/queues", f"/api/v1/queues/{QUEUE}", "/api/v1/workers")
    async with _gateway(suite, token) as http:
        while True:
            for path in paths:
                with contextlib.suppress(httpx.TransportError):  # the suite restarting: no answer at all
                    response = await http.get(path)
                    watch.answers.append((time.monotonic(), path, response.status_code))
            await asyncio.sleep(0.5)


async def _ready(suite: SuiteProcess, limit: float = 90.0) -> None:
    await wait_for(suite.gateway_ready, "the suite ready (/readyz 200)", limit)


async def _minutes(suite: SuiteProcess, authority: TokenAuthority) -> list[col_pb.SnapshotPoint]:
    """The queue's minute points over the last hour, from CollectorService."""
    channel = open_channel(suite.grpc_target, authority.mint("ops", "viewer"))
    try:
        stub = col_grpc.CollectorServiceStub(channel)
        request = col_pb.QuerySnapshotsRequest(queue=QUEUE)
        end = time.time()
        request.start_time.FromSeconds(int(end) - 3600)
        request.end_time.FromSeconds(int(end))
        request.step.FromSeconds(60)
        try:
            reply = await stub.QuerySnapshots(request, timeout=10)
        except grpc.aio.AioRpcError:
            return []
        return list(reply.points)
    finally:
        await channel.close()


def _collected(points: list[col_pb.SnapshotPoint]) -> list[int]:
    return [p.time.seconds for p in points if p.has_data]


async def _outage(
    watch: Watch,
    name: str,
    down: Callable[[], Awaitable[None]],
    up: Callable[[], Awaitable[None]],
    seconds: float,
) -> Outage:
    outage = Outage(name, time.monotonic())
    watch.outages.append(outage)
    await down()
    # The fault itself lasts this long: there is no condition to wait for, only time to let pass.
    await asyncio.sleep(seconds)
    await up()
    outage.end = time.monotonic()
    return outage


async def _post(suite: SuiteProcess, token: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with _gateway(suite, token) as http:
        return await http.post(path, json=body)


@dataclass
class Findings:
    """What the scenario saw, checked at the end."""

    added: list[str]
    counts: dict[str, int]
    first_minute: int
    points: list[col_pb.SnapshotPoint]
    audited: list[int]
    reads: dict[str, dict[str, Any]]
    watch: Watch
    redis_outage: Outage
    lines_during_redis_outage: list[str]
    silent_notifications: int


@pytest.mark.timeout(600)
async def test_nothing_is_lost_when_redis_the_database_and_the_suite_go_away(
    tmp_path: Path, postgres_url: str | None
) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    redis = RedisProcess(tmp_path / "redis")
    await redis.start()
    database = PostgresDatabase(postgres_url)
    database.create()
    try:
        async with http_receivers() as receivers:
            hooks = await receivers()
            suite = SuiteProcess(env=_settings(tmp_path, redis, database, hooks))
            try:
                found = await _scenario(redis, database, suite, hooks)
            finally:
                await suite.stop()
    finally:
        await redis.stop()
        await asyncio.to_thread(database.drop)

    # No lost job: every job the producer saw accepted completed, none failed.
    assert found.counts["completed"] == len(set(found.added)) and found.counts["failed"] == 0, found.counts
    # No lost registry entry: the instrumented worker is known and online after all of it.
    assert found.reads["worker"]["worker"]["status"] == "WORKER_STATUS_ONLINE", found.reads["worker"]
    # No lost snapshot minute: every minute from the first collected one has a row (back-filled if needed).
    collected = _collected(found.points)
    expected = range(found.first_minute, collected[-1] + 60, 60)
    assert [m for m in expected if m not in collected] == [], "minutes missing from the history"
    assert found.reads["queue"]["queue"]["name"] == QUEUE
    # No lost audit entry; the action refused while the database was gone left none.
    entries = found.reads["audit"]["auditLogs"]
    assert {str(i) for i in found.audited} <= {e["id"] for e in entries}, found.audited
    pauses = [e for e in entries if e["action"] == "AUDIT_ACTION_QUEUE_PAUSE" and e.get("queue") == QUEUE]
    assert len(pauses) == 1, pauses
    # Only honest answers: 200, or 503 while a dependency was gone (or just back).
    watch = found.watch
    wrong = [
        (round(at, 1), path, status)
        for at, path, status in watch.answers
        if status != 200 and not (status == 503 and watch.excused(at))
    ]
    assert wrong == [], wrong
    assert any(status == 200 for *_, status in watch.answers)
    # A quiet log while Redis was gone: one line per loop as it failed, one as it recovered, no storm.
    lines = found.lines_during_redis_outage
    assert len(lines) <= MAX_LOG_LINES_PER_OUTAGE_SECOND * REDIS_OUTAGE_SECONDS, _busiest(lines)
    # No lost notification, none sent twice: the silent worker's WORKER_DOWN, opened while the database
    # was gone or just after, reached the webhook exactly once, across the restart.
    assert found.silent_notifications == 1, found.silent_notifications


def _settings(
    tmp_path: Path, redis: RedisProcess, database: PostgresDatabase, hooks: HttpReceiver
) -> dict[str, str]:
    channel = {"name": "hook", "type": "webhook", "url": hooks.url, "timeout_seconds": 5}
    return {
        "REDIS_URL": redis.url,
        "DATABASE_URL": database.url,
        "WORKERMON_DATA_DIR": str(tmp_path / "data"),
        "WORKERMON_QUEUES": QUEUE,
        # Quick beats and a quick WORKER_DOWN, so the silent worker's incident opens within the scenario.
        "WORKERMON_BEAT_INTERVAL_SECONDS": "1",
        "WORKERMON_ONLINE_WINDOW_SECONDS": "3",
        "WORKERMON_WORKER_DOWN_MISSED_BEATS": "2",
        "WORKERMON_INCIDENT_QUIET_MINUTES": "0",
        "WORKERMON_INCIDENT_EVAL_INTERVAL_SECONDS": "5",
        "WORKERMON_NOTIFY_CHANNELS": json.dumps([channel]),
    }


async def _scenario(
    redis: RedisProcess, database: PostgresDatabase, suite: SuiteProcess, hooks: HttpReceiver
) -> Findings:
    """Workload on; Redis killed for 20 s; the database refusing connections for a minute; the suite
    restarted; then everything the workload did is read back."""
    authority = TokenAuthority(TEST_SECRET)
    viewer, admin = authority.mint("vera", "viewer"), authority.mint("ada", "admin")
    queue = Queue(QUEUE, {"connection": redis.url})
    added: list[str] = []
    watch = Watch()
    tasks: list[asyncio.Task[None]] = []

    async def process(job: Job, token: str) -> Any:
        return job.data["n"]

    worker = InstrumentedWorker(
        QUEUE,
        process,
        {"connection": redis.url, "concurrency": 4},
        target=suite.grpc_target,
        token=authority.mint("w", "worker", worker=WORKER_ID),
        worker_id=WORKER_ID,
    )
    try:
        await suite.migrate()
        async with running(suite):
            await _ready(suite)
            await worker.start()
            tasks.append(asyncio.create_task(produce(queue, added)))
            # The queue exists from its first job on: watched any earlier, it is rightly NOT_FOUND.
            await wait_for(lambda: bool(added), "the first job added", 30)
            tasks.append(asyncio.create_task(_watch_gateway(suite, viewer, watch)))
            # The first minute row: from here on, no minute may be missing.
            await wait_for(lambda: _has_minutes(suite, authority, 1), "the first collected minute", 100)
            first_minute = _collected(await _minutes(suite, authority))[0]
            audited = await _pause_and_resume(suite, admin)
            redis_outage = await _outage(watch, "redis", redis.kill, redis.start, REDIS_OUTAGE_SECONDS)
            await _ready(suite)
            await beat_once(suite.grpc_target, authority, SILENT_WORKER_ID, (QUEUE,))
            await _database_outage(suite, admin, database, watch)
            await _ready(suite)

        restart = Outage("suite restart", time.monotonic())
        watch.outages.append(restart)
        async with running(suite):
            await _ready(suite)
            restart.end = time.monotonic()
            tasks[0].cancel()  # the producer: every job it added must now finish
            await wait_for(lambda: all_done(queue, added), "every added job completed", 90)
            # A minute collected after the restart: the history must reach it without a gap.
            restarted_minute = int(time.time()) // 60 * 60
            await wait_for(
                lambda: _has_minute_at(suite, authority, restarted_minute), "a minute after the restart", 130
            )
            await wait_for(
                lambda: worker_down_notifications(hooks, SILENT_WORKER_ID) >= 1,
                "the silent worker's WORKER_DOWN",
                90,
            )
            points = await _minutes(suite, authority)
            # Beats every second, ONLINE for three: on a starved machine a read can fall in a gap.
            await wait_for(lambda: _worker_online(suite, viewer), "the worker ONLINE", 15)
            reads = await _final_reads(suite, viewer)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.close()
        await queue.close()
    return Findings(
        added=added,
        counts=await _counts(redis.url),
        first_minute=first_minute,
        points=points,
        audited=audited,
        reads=reads,
        watch=watch,
        redis_outage=redis_outage,
        silent_notifications=worker_down_notifications(hooks, SILENT_WORKER_ID),
        lines_during_redis_outage=[
            line
            for line in suite.lines_between(redis_outage.start, redis_outage.end)
            if _event(line) not in PER_REQUEST_EVENTS
        ],
    )


async def _pause_and_resume(suite: SuiteProcess, admin: str) -> list[int]:
    paused = await _post(suite, admin, f"/api/v1/queues/{QUEUE}:pause", {})
    resumed = await _post(suite, admin, f"/api/v1/queues/{QUEUE}:resume", {})
    assert paused.status_code == resumed.status_code == 200, (paused.text, resumed.text)
    return [int(paused.json()["auditId"]), int(resumed.json()["auditId"])]


async def _database_outage(suite: SuiteProcess, admin: str, database: PostgresDatabase, watch: Watch) -> None:
    async def refuse() -> None:
        await asyncio.to_thread(database.refuse_connections)

    async def allow() -> None:
        # While the database is gone an action is refused whole: 503, not performed, not half-audited.
        refused = await _post(suite, admin, f"/api/v1/queues/{QUEUE}:pause", {})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["details"][0]["reason"] == "AUDIT_UNAVAILABLE"
        await asyncio.to_thread(database.allow_connections)

    await _outage(watch, "database", refuse, allow, DATABASE_OUTAGE_SECONDS)


async def _has_minutes(suite: SuiteProcess, authority: TokenAuthority, n: int) -> bool:
    return len(_collected(await _minutes(suite, authority))) >= n


async def _has_minute_at(suite: SuiteProcess, authority: TokenAuthority, minute: int) -> bool:
    return minute in _collected(await _minutes(suite, authority))


async def _counts(redis_url: str) -> dict[str, int]:
    queue = Queue(QUEUE, {"connection": redis_url})
    try:
        counts: dict[str, int] = await queue.getJobCounts("completed", "failed")
        return counts
    finally:
        await queue.close()


async def _worker_online(suite: SuiteProcess, token: str) -> bool:
    """Whether the gateway says the instrumented worker is ONLINE."""
    async with _gateway(suite, token) as http:
        response = await http.get(f"/api/v1/workers/{WORKER_ID}")
    return response.status_code == 200 and response.json()["worker"]["status"] == "WORKER_STATUS_ONLINE"


async def _final_reads(suite: SuiteProcess, token: str) -> dict[str, dict[str, Any]]:
    """What the gateway says at the end: the worker, the audit log, the queue."""
    paths = {
        "worker": f"/api/v1/workers/{WORKER_ID}",
        "audit": "/api/v1/auditLogs?pageSize=200",
        "queue": f"/api/v1/queues/{QUEUE}",
    }
    answers = {}
    async with _gateway(suite, token) as http:
        for name, path in paths.items():
            response = await http.get(path)
            assert response.status_code == 200, response.text
            answers[name] = response.json()
    return answers


def _event(line: str) -> str:
    """The event name of a JSON log line ("" for a line that is not one)."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        return str(json.loads(line).get("event"))
    return ""


def _busiest(lines: list[str]) -> str:
    """The events logged most often, to say which loop stormed."""
    events: dict[str, int] = {}
    for line in lines:
        name = _event(line)
        events[name] = events.get(name, 0) + 1
    top = sorted(events.items(), key=lambda item: -item[1])[:8]
    return f"{len(lines)} lines; most logged: {top}"
