"""A Redis Cluster as the watched BullMQ Redis: three primaries as real processes on loopback, BullMQ queues
hash-tagged onto each of them (`bull:{orders}:...`, the layout BullMQ asks for on a cluster), and also
all under one hash-tagged prefix (`{bull}:...`).

The queue library is checked against BullMQ's own `getJobCounts` and the workload it ran (discovery walks
every primary; states, events, finished jobs and every action work where each queue's slot lives), then
`workermon serve` as a whole, its own Redis on the cluster too, collects the queues: its counts equal
`getJobCounts`, and its per-minute completed and failed figures add up to the workload; a worker beats
and gets a command; nothing in the background fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from bullmq import Job, Queue, Worker

from tests.support.fakes import TEST_SECRET
from tests.support.heartbeat import report
from tests.support.processes import ClusterGroup, SuiteProcess, running, wait_for
from tests.support.workload import minute_points
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.redis_store import bullmq_connection, connect_any
from workermon_queues.backend import QueueState
from workermon_queues.bullmq.backend import BullMQBackend
from workermon_queues.bullmq.connections import worker_connections
from workermon_queues.bullmq.jobs import BullMQJobs

pytestmark = pytest.mark.slow

# One queue on each primary of the three (checked: the test fails if the cluster placed them otherwise).
QUEUES = ("{orders}", "{images}", "{invoices}")
WORKER_ID = "cluster-worker"
# Per queue, in QUEUES' order: how many jobs complete, and how many fail for good.
OUTCOMES = ((7, 2), (4, 3), (5, 1))
COUNTED = ("waiting", "active", "delayed", "prioritized", "waiting-children", "completed", "failed")


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ClusterGroup]:
    """A running 3-primary cluster, shared by this module's tests (each uses queues of its own prefix)."""
    group = ClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:
        await group.start()
        yield group
    finally:
        await group.stop()


def _queues(cluster: ClusterGroup, prefix: str, names: Sequence[str]) -> dict[str, Queue]:
    return {
        name: Queue(name, {"connection": bullmq_connection(cluster.url), "prefix": prefix}) for name in names
    }


def _plan(names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each queue's (completed, failed) outcomes."""
    return dict(zip(names, OUTCOMES, strict=True))


async def _run_workload(
    cluster: ClusterGroup, prefix: str, queues: dict[str, Queue], plan: dict[str, tuple[int, int]]
) -> None:
    """Per queue, the jobs `plan` says complete and fail for good, processed by a bullmq Worker of that
    queue; returns when all of them finished."""

    async def process(job: Job, token: str) -> str:
        if job.data["fail"]:
            raise RuntimeError("boom: a job made to fail")
        return "ok"

    workers = [
        Worker(
            name, process, {"connection": bullmq_connection(cluster.url), "prefix": prefix, "autorun": False}
        )
        for name in queues
    ]
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        for name, queue in queues.items():
            completed, failed = plan[name]
            for n in range(completed + failed):
                await queue.add("work", {"fail": n >= completed}, {"attempts": 1})

        async def finished() -> bool:
            for name, queue in queues.items():
                counts = await queue.getJobCounts("completed", "failed")
                if (counts["completed"], counts["failed"]) != plan[name]:
                    return False
            return True

        await wait_for(finished, "the workload finished", 60)
        await _workers_seen_by_connection(cluster, prefix, set(queues))
    finally:
        for worker in workers:
            await worker.close()
        await asyncio.gather(*runs, return_exceptions=True)


async def _workers_seen_by_connection(cluster: ClusterGroup, prefix: str, names: set[str]) -> None:
    """CLIENT LIST read on every primary finds each running worker by its named connection."""
    client = connect_any(cluster.url)
    try:
        seen = await worker_connections(client, prefix)
    finally:
        await client.aclose()
    assert {c.queue for c in seen} == names
    assert len({c.node for c in seen}) == len(QUEUES)  # every primary was read


def _as_counts(state: QueueState) -> dict[str, int]:
    return {
        "waiting": state.waiting,
        "active": state.active,
        "delayed": state.delayed,
        "prioritized": state.prioritized,
        "waiting-children": state.waiting_children,
        "completed": state.completed,
        "failed": state.failed,
    }


async def _close(queues: dict[str, Queue]) -> None:
    for queue in queues.values():
        with contextlib.suppress(Exception):
            await queue.obliterate({"force": True})
        await queue.close()


@pytest.mark.parametrize("prefix", ["bull", "{bull}"], ids=["queue-tagged", "prefix-tagged"])
async def test_the_queue_library_reads_and_acts_across_primaries(cluster: ClusterGroup, prefix: str) -> None:
    tagged_prefix = prefix.startswith("{")
    names = [name[1:-1] if tagged_prefix else name for name in QUEUES]
    # Under a hash-tagged prefix every queue shares its slot; tagged queue names spread over the primaries.
    nodes = {cluster.node_of(f"{prefix}:{name}:meta") for name in names}
    assert len(nodes) == (1 if tagged_prefix else 3), nodes
    plan = _plan(names)
    queues = _queues(cluster, prefix, names)
    client = connect_any(cluster.url)
    backend = BullMQBackend(client, prefix=prefix)
    jobs = BullMQJobs(client, prefix)
    try:
        started_ms = int(time.time() * 1000)
        await _run_workload(cluster, prefix, queues, plan)
        first = names[0]
        await queues[first].add("later", {}, {"delay": 600_000})
        await queues[first].add("urgent", {}, {"priority": 5})
        await queues[names[1]].pause()

        assert await backend.discover() == sorted(names)
        states = await backend.states(names, int(time.time() * 1000))
        for name, queue in queues.items():
            assert _as_counts(states[name]) == await queue.getJobCounts(*COUNTED), name
        assert states[names[1]].paused and not states[first].paused

        finished = await backend.finished_between_many(names, started_ms, int(time.time() * 1000) + 1)
        for name in names:
            outcomes = [job.state for job in finished[name]]
            assert (outcomes.count("completed"), outcomes.count("failed")) == plan[name], name
        batches = await backend.read_events_many(dict.fromkeys(names, "0-0"), 1000)
        for name in names:
            kinds = [event.kind for event in batches[name].events]
            assert (kinds.count("completed"), kinds.count("failed")) == plan[name], name

        # Actions run where each queue's slot lives (BullMQ's scripts in the cluster's pipelines).
        assert await jobs.retry_failed(names[2], None) == plan[names[2]][1]
        assert await jobs.promote_delayed(first, None) == 1
        assert await jobs.resume(names[1])
        page = await jobs.list_jobs(first, ["completed"], 3, None)
        assert len(page.jobs) == 3 and page.total == plan[first][0]
        detail = await jobs.get_job(first, page.jobs[0].id, 1)
        assert detail.summary.id == page.jobs[0].id and detail.return_value_truncated  # cut inside Redis
        removed = await jobs.clean(names[1], "completed", 0, 0)
        assert len(removed) == plan[names[1]][0]
        assert await jobs.drain(first, include_delayed=True) == 2  # the promoted and the prioritized job
        states = await backend.states(names, int(time.time() * 1000))
        for name, queue in queues.items():
            assert _as_counts(states[name]) == await queue.getJobCounts(*COUNTED), name
    finally:
        await jobs.close()
        await _close(queues)
        await client.aclose()


# --- the suite --------------------------------------------------------------------------------------


def _as_proto_counts(counts: dict[str, Any]) -> dict[str, int]:
    return {key.replace("-", "_"): int(value) for key, value in counts.items()}


async def _worker_and_command(suite: SuiteProcess, channel: grpc.aio.Channel) -> None:
    """A worker beats (ONLINE), is sent a command, and gets it with its next beat: the registry's scripts
    on the cluster."""
    authority = TokenAuthority(TEST_SECRET)
    beats = open_channel(suite.grpc_target, authority.mint(WORKER_ID, "worker", worker=WORKER_ID))
    monitor = mon_grpc.MonitorServiceStub(channel)
    try:
        heartbeat = hb_grpc.HeartbeatServiceStub(beats)
        beat = hb_pb.BeatRequest(report=report(WORKER_ID, (QUEUES[0],)))
        await heartbeat.Beat(beat, timeout=10)
        worker = (await monitor.GetWorker(mon_pb.GetWorkerRequest(worker_id=WORKER_ID))).worker
        assert worker.status == mon_pb.WORKER_STATUS_ONLINE
        quiet = await monitor.QuietWorker(mon_pb.QuietWorkerRequest(worker_id=WORKER_ID, reason="cluster"))
        delivered = (await heartbeat.Beat(beat, timeout=10)).commands
        assert [c.command_id for c in delivered] == [quiet.command.command_id]
    finally:
        await beats.close()


@pytest.mark.timeout(300)
async def test_the_suite_counts_cluster_queues_exactly(tmp_path: Path, cluster: ClusterGroup) -> None:
    prefix = "suite"
    plan = _plan(QUEUES)
    queues = _queues(cluster, prefix, QUEUES)
    suite = SuiteProcess(
        env={
            "REDIS_URL": cluster.url,
            "WORKERMON_DATA_DIR": str(tmp_path / "data"),
            "WORKERMON_QUEUE_REDIS_URL": cluster.url,
            "WORKERMON_QUEUE_PREFIX": prefix,
            "WORKERMON_READINESS_INTERVAL_SECONDS": "0.5",
        }
    )
    channel = open_channel(suite.grpc_target, TokenAuthority(TEST_SECRET).mint("ops", "admin"))
    collector = col_grpc.CollectorServiceStub(channel)
    try:
        # The queues exist before the suite starts, so its first collection already finds them.
        for queue in queues.values():
            await queue.add("setup", {}, {"attempts": 1})
            await queue.remove((await queue.getJobs(["waiting"]))[0].id)
        await suite.migrate()
        async with running(suite):
            await wait_for(suite.serving, "the suite SERVING", 60)
            first = await collector.CollectNow(col_pb.CollectNowRequest(), timeout=20)
            assert sorted(s.queue for s in first.snapshots) == sorted(QUEUES), first
            # The workload starts in the minute after the first collected one: every minute it touches is
            # one the suite followed from its start.
            next_minute = (int(time.time()) // 60 + 1) * 60
            await wait_for(lambda: time.time() >= next_minute, "the next minute", 65)
            await _run_workload(cluster, prefix, queues, plan)
            last_minute = int(time.time()) // 60 * 60
            await wait_for(lambda: time.time() >= last_minute + 61, "the workload's last minute over", 65)
            await collector.CollectNow(col_pb.CollectNowRequest(), timeout=20)

            for name, queue in queues.items():
                points = [
                    p
                    for p in await minute_points(channel, name)
                    if p.has_data and p.time.seconds >= next_minute
                ]
                minutes = [p.time.seconds for p in points if p.time.seconds <= last_minute]
                assert minutes == list(range(next_minute, last_minute + 60, 60)), (name, minutes)
                assert (sum(p.completed for p in points), sum(p.failed for p in points)) == plan[name], name
                assert not any(p.approximate for p in points), name
                expected = _as_proto_counts(await queue.getJobCounts(*COUNTED))
                collected = points[-1].counts
                assert {k: getattr(collected, k) for k in expected} == expected, name
                live = (
                    await mon_grpc.MonitorServiceStub(channel).GetQueue(mon_pb.GetQueueRequest(queue=name))
                ).queue
                assert {k: getattr(live.counts, k) for k in expected} == expected, name
            await _worker_and_command(suite, channel)
            # Nothing in the background failed on the cluster (pub/sub, sweeps, schedules, followers).
            complaints = [
                line for _, line in suite.lines if '"level": "warning"' in line or '"error"' in line
            ]
            assert not complaints, complaints
    finally:
        await channel.close()
        await _close(queues)
