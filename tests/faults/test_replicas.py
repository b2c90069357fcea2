"""Every service in processes of its own, two replicas each, peers named as lists of replicas, under a
BullMQ workload and an SDK worker; one replica of each killed with SIGKILL while it runs. Replicas must be
safe: one snapshot row per queue and minute with none missing, each worker transition audited once, each
incident notified once per channel, the worker carried on by the other heartbeat replica, and a live-stream
client of the gateway killed told to refetch by the other gateway.

One slow test on purpose (real processes, real minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from bullmq import Job, Queue
from sqlalchemy.pool import NullPool

from tests.support.fakes import TEST_SECRET
from tests.support.heartbeat import beat_once
from tests.support.processes import PostgresDatabase, RedisProcess, SuiteProcess, free_port, wait_for
from tests.support.sse import SseReader
from tests.support.webhooks import HttpReceiver, http_receivers
from tests.support.workload import all_done, produce, worker_down_notifications
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_sdk.bullmq import InstrumentedWorker

QUEUE = "replicated"
WORKER_ID = "replica-worker"
SILENT_WORKER_ID = "replica-silent"
SERVICES = ("heartbeat", "collector", "monitor", "incidents")
RUN_AFTER_KILL_SECONDS = 30.0


def _settings(
    tmp_path: Path, redis: RedisProcess, database: PostgresDatabase, hooks: HttpReceiver
) -> dict[str, str]:
    channel = {"name": "hook", "type": "webhook", "url": hooks.url, "timeout_seconds": 5}
    return {
        "REDIS_URL": redis.url,
        "DATABASE_URL": database.url,
        "WORKERMON_QUEUES": QUEUE,
        "WORKERMON_BEAT_INTERVAL_SECONDS": "1",
        "WORKERMON_ONLINE_WINDOW_SECONDS": "5",
        "WORKERMON_WORKER_DOWN_MISSED_BEATS": "2",
        "WORKERMON_INCIDENT_QUIET_MINUTES": "0",
        "WORKERMON_INCIDENT_EVAL_INTERVAL_SECONDS": "5",
        "WORKERMON_NOTIFY_CHANNELS": json.dumps([channel]),
        "WORKERMON_SHUTDOWN_GRACE_SECONDS": "1",
    }


def _topology(tmp_path: Path, common: dict[str, str]) -> dict[str, list[SuiteProcess]]:
    """Two processes per service and two gateways; every peer address lists both replicas."""
    ports = {name: [free_port(), free_port()] for name in SERVICES}
    targets = {
        f"WORKERMON_{name.upper()}_TARGET": ",".join(f"127.0.0.1:{p}" for p in ports[name])
        for name in SERVICES
    }
    processes: dict[str, list[SuiteProcess]] = {}
    for name in (*SERVICES, "gateway"):
        processes[name] = []
        for i in range(2):
            env = {**common, **targets, "WORKERMON_DATA_DIR": str(tmp_path / f"{name}-{i}")}
            if name == "gateway":
                processes[name].append(SuiteProcess(env=env, target="gateway"))
            else:
                processes[name].append(SuiteProcess(env=env, target=name, grpc_port=ports[name][i]))
    return processes


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_replicas_of_every_service_survive_losing_one_each(
    tmp_path: Path, postgres_url: str | None
) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    redis = RedisProcess(tmp_path / "redis")
    await redis.start()
    database = PostgresDatabase(postgres_url)
    database.create()
    everything: list[SuiteProcess] = []
    try:
        async with http_receivers() as receivers:
            hooks = await receivers()
            topology = _topology(tmp_path, _settings(tmp_path, redis, database, hooks))
            everything = [p for group in topology.values() for p in group]
            await everything[0].migrate()
            for process in everything:
                await process.start()
            found = await _run(redis, topology, hooks)
            rows = await asyncio.to_thread(_snapshot_minutes, database)
    finally:
        await asyncio.gather(*(p.stop() for p in everything), return_exceptions=True)
        await redis.stop()
        await asyncio.to_thread(database.drop)

    # One row per queue and minute, and no minute missing after the first full one.
    minutes = [minute for minute, count in rows]
    assert all(count == 1 for _, count in rows), rows
    assert minutes == list(range(minutes[0], minutes[-1] + 60, 60)), minutes
    assert minutes[-1] >= found["killed_at_minute"], "minutes collected after the kill"
    # Every job the producer saw accepted completed.
    assert found["completed"] == found["added"], found
    # Worker transitions audited once each: ONLINE and OFFLINE alternate, each event recorded once.
    transitions = found["transitions"]
    assert transitions and transitions[0][0] == "AUDIT_ACTION_WORKER_ONLINE", transitions
    assert all(a != b for (a, _), (b, _) in itertools.pairwise(transitions)), transitions
    event_ids = [event for _, event in transitions]
    assert len(event_ids) == len(set(event_ids)), transitions
    # The worker is carried on by the heartbeat replica still running.
    assert found["worker_status"] == mon_pb.WORKER_STATUS_ONLINE
    # One notification per incident transition and channel.
    assert found["silent_notifications"] == 1, found
    # A live-stream client of the gateway killed, resuming on the other, is told to refetch (each
    # gateway numbers its own events), then gets the current state.
    assert found["resumed"] == ["reset", "overview"], found


async def _run(
    redis: RedisProcess, topology: dict[str, list[SuiteProcess]], hooks: HttpReceiver
) -> dict[str, Any]:
    for group in topology.values():
        for process in group:
            ready = process.gateway_ready if process.target == "gateway" else process.serving
            await wait_for(ready, f"{process.target} replica ready\n{process.tail()}", 90)
    authority = TokenAuthority(TEST_SECRET)
    heartbeat_list = "ipv4:" + ",".join(p.grpc_target for p in topology["heartbeat"])
    monitor_list = ",".join(p.grpc_target for p in topology["monitor"])
    queue = Queue(QUEUE, {"connection": redis.url})
    added: list[str] = []

    async def process_job(job: Job, token: str) -> Any:
        return job.data["n"]

    worker = InstrumentedWorker(
        QUEUE,
        process_job,
        {"connection": redis.url, "concurrency": 4},
        target=heartbeat_list,
        token=authority.mint("w", "worker", worker=WORKER_ID),
        worker_id=WORKER_ID,
    )
    monitor = open_channel(monitor_list, authority.mint("ops", "admin"))
    producer = asyncio.create_task(produce(queue, added))
    await worker.start()
    try:
        viewer = mon_grpc.MonitorServiceStub(monitor)
        await wait_for(lambda: _online(viewer, WORKER_ID), "the worker ONLINE", 30)
        # A worker that beats once and falls silent: its WORKER_DOWN must be notified exactly once.
        await beat_once(topology["heartbeat"][0].grpc_target, authority, SILENT_WORKER_ID, (QUEUE,))
        await wait_for(lambda: _first_minute_written(viewer), "the first collected minute", 100)

        # Lose one replica of everything at once, a live-stream client connected to the gateway killed.
        async with _live_stream(topology["gateway"][0], authority.mint("ops", "viewer")) as (reader, last_id):
            for group in topology.values():
                await group[0].stop(signal.SIGKILL)
            killed_at = time.time()
            with pytest.raises((EOFError, httpx.HTTPError)):
                while True:  # events sent before the gateway died (upstreams going away), then the end
                    await reader.next(within=10)
        resumed = await _resume(topology["gateway"][1], authority.mint("ops", "viewer"), last_id)
        await wait_for(
            lambda: time.time() - killed_at >= RUN_AFTER_KILL_SECONDS, "the run after the kill", 60
        )
        producer.cancel()
        await wait_for(lambda: all_done(queue, added), "every added job completed", 90)
        killed_minute = int(killed_at) // 60 * 60
        await wait_for(lambda: _minute_written(viewer, killed_minute + 60), "a minute after the kill", 150)
        silent = "the silent worker's WORKER_DOWN notification"
        await wait_for(lambda: worker_down_notifications(hooks, SILENT_WORKER_ID) >= 1, silent, 60)
        counts = await queue.getJobCounts("completed")
        worker_reply = await viewer.GetWorker(mon_pb.GetWorkerRequest(worker_id=WORKER_ID), timeout=10)
        transitions = await _transitions(viewer)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await worker.close()
        await queue.close()
        await monitor.close()
    return {
        "added": len(set(added)),
        "completed": counts["completed"],
        "killed_at_minute": killed_minute,
        "transitions": transitions,
        "worker_status": worker_reply.worker.status,
        "silent_notifications": worker_down_notifications(hooks, SILENT_WORKER_ID),
        "resumed": resumed,
    }


@contextlib.asynccontextmanager
async def _live_stream(gateway: SuiteProcess, token: str) -> AsyncIterator[tuple[SseReader, str]]:
    """A live-stream client of `gateway`, and the id of the first event it received (the overview)."""
    async with (
        httpx.AsyncClient(base_url=gateway.http_url, timeout=30) as http,
        http.stream("GET", "/api/v1/stream", params={"access_token": token}) as response,
    ):
        assert response.status_code == 200
        reader = SseReader(response)
        first = await reader.next(kinds=("overview",))
        assert first.id
        yield reader, first.id


async def _resume(gateway: SuiteProcess, token: str, last_id: str) -> list[str]:
    """The kinds of the first two events `gateway` sends a client resuming after `last_id`."""
    async with (
        httpx.AsyncClient(base_url=gateway.http_url, timeout=30) as http,
        http.stream(
            "GET", "/api/v1/stream", params={"access_token": token}, headers={"Last-Event-ID": last_id}
        ) as response,
    ):
        assert response.status_code == 200
        reader = SseReader(response)
        return [(await reader.next()).event, (await reader.next()).event]


async def _online(stub: mon_grpc.MonitorServiceStub, worker_id: str) -> bool:
    try:
        reply = await stub.GetWorker(mon_pb.GetWorkerRequest(worker_id=worker_id), timeout=5)
    except Exception:
        return False
    return bool(reply.worker.status == mon_pb.WORKER_STATUS_ONLINE)


async def _trend_minutes(stub: mon_grpc.MonitorServiceStub) -> list[int]:
    try:
        reply = await stub.GetQueueTrend(mon_pb.GetQueueTrendRequest(queue=QUEUE, hours=1), timeout=10)
    except Exception:
        return []
    return [p.time.seconds for p in reply.points if p.has_data]


async def _first_minute_written(stub: mon_grpc.MonitorServiceStub) -> bool:
    return bool(await _trend_minutes(stub))


async def _minute_written(stub: mon_grpc.MonitorServiceStub, minute: int) -> bool:
    return minute in await _trend_minutes(stub)


async def _transitions(stub: mon_grpc.MonitorServiceStub) -> list[tuple[str, str]]:
    """The worker's ONLINE/OFFLINE audit entries, oldest first, with the heartbeat event each records."""
    reply = await stub.ListAuditLogs(
        mon_pb.ListAuditLogsRequest(entity_id=WORKER_ID, actor="system", page_size=200), timeout=10
    )
    entries = [
        (mon_pb.AuditAction.Name(e.action), str(dict(e.result).get("event_id", "")))
        for e in reversed(reply.audit_logs)
        if e.action in (mon_pb.AUDIT_ACTION_WORKER_ONLINE, mon_pb.AUDIT_ACTION_WORKER_OFFLINE)
    ]
    return entries


def _snapshot_minutes(database: PostgresDatabase) -> list[tuple[int, int]]:
    """(minute as epoch seconds, rows) for the queue, oldest first, read straight from the database."""
    engine = sa.create_engine(database.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT EXTRACT(EPOCH FROM minute)::bigint, COUNT(*) FROM collector_queue_snapshots "
                    "WHERE queue = :queue GROUP BY minute ORDER BY minute"
                ),
                {"queue": QUEUE},
            ).all()
    finally:
        engine.dispose()
    return [(int(m), int(c)) for m, c in rows]
