"""One bad queue or job never breaks the rest: corruption planted in real Redis, under a running suite.

Each test starts every service and the gateway, fills two healthy queues and one that it then spoils
(`bad`) with real BullMQ jobs, plants one kind of corruption — a key of another type, text that is not
UTF-8, times that are not numbers, garbage in the event stream, a job key of another type — and checks
that every read RPC of MonitorService still answers for the healthy queues as before, that the bad queue
or job is shown as described rather than erroring, and that no HTTP answer of the gateway is a 500.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue

from tests.support.bull import until
from tests.support.gateway import Gateway, fail_some, start_gateway_suite, stop_gateway_suite
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_collector.collector import Collector
from workermon_collector.follower import minute_of
from workermon_core.client import open_channel

HEALTHY = ("alpha", "beta")
QUEUES = ("alpha", "bad", "beta")
REPLACED = "\ufffd"


@dataclass
class World:
    """The running suite, its clients, and the jobs of each queue."""

    gateway: Gateway
    monitor: pb_grpc.MonitorServiceStub
    collector: col_grpc.CollectorServiceStub
    queues: dict[str, Queue]
    jobs: dict[str, list[str]] = field(default_factory=dict)

    def key(self, queue: str, part: str) -> str:
        """The Redis key of one of a queue's structures."""
        return f"{self.gateway.settings.queue_prefix}:{queue}:{part}"

    @property
    def redis(self) -> aioredis.Redis:
        """The Redis the watched queues live in."""
        redis: aioredis.Redis = self.gateway.suite.deps.watched_redis
        return redis

    @property
    def collector_parts(self) -> Collector:
        collector: Collector = self.gateway.suite.built["collector"].parts.collector
        return collector

    async def refresh(self) -> None:
        """Make the board read the collector's history again (it caches it for seconds)."""
        await self.gateway.suite.built["monitor"].parts.board.refresh()


@pytest.fixture
async def world(tmp_path: Path, redis_url: str) -> AsyncIterator[World]:
    gateway = await start_gateway_suite(tmp_path, redis_url)
    try:
        channel = open_channel(gateway.suite.grpc_target, gateway.token("admin"))
        gateway.channels.append(channel)
        queues = {name: gateway.queue(name) for name in QUEUES}
        world = World(
            gateway, pb_grpc.MonitorServiceStub(channel), col_grpc.CollectorServiceStub(channel), queues
        )
        await fail_some(gateway, queues["alpha"], completed=3, failed=1)
        await fail_some(gateway, queues["bad"], completed=1, failed=0)
        for name in ("beta", "bad"):
            for i in range(2):
                await queues[name].add(f"{name}-job", {"i": i})
            # An instrumented worker on the queue: waiting jobs with a worker online are RUNNING.
            await gateway.beat(f"worker-{name}", [name])
        for name in QUEUES:
            listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue=name, page_size=100))
            world.jobs[name] = [j.job_id for j in listed.jobs]
        # The event follower's cursors, before anything is spoiled (history is collected by each test:
        # a minute is written once, so a row collected here would hide what the test changes).
        await world.collector_parts.follow_all()
        yield world
    finally:
        await stop_gateway_suite(gateway)


async def bad_job(world: World, state: pb.JobState.ValueType) -> str:
    """The id of the bad queue's first job in `state`."""
    listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", states=[state]))
    return listed.jobs[0].job_id


async def collect(world: World) -> col_pb.CollectNowResponse:
    """Collect the last full minute of every queue; the board then reads the new history."""
    collected = await world.collector.CollectNow(col_pb.CollectNowRequest())
    await world.refresh()
    return collected


async def assert_healthy_queues_answer(world: World) -> None:
    """Every read RPC of MonitorService answers for the healthy queues as it did before the corruption
    (with history collected since)."""
    monitor = world.monitor
    overview = await monitor.GetOverview(pb.GetOverviewRequest())
    assert overview.queues_total == len(QUEUES)
    assert not set(HEALTHY) & set(overview.degraded_queues)
    listed = {q.name: q for q in (await monitor.ListQueues(pb.ListQueuesRequest())).queues}
    assert sorted(listed) == sorted(QUEUES)
    for name in HEALTHY:
        queue = (await monitor.GetQueue(pb.GetQueueRequest(queue=name))).queue
        # GetQueue adds what only one queue's page shows (priorities, stall candidates).
        assert queue.HasField("priorities") and queue.HasField("stalled")
        queue.ClearField("priorities")
        queue.ClearField("stalled")
        assert queue == listed[name]
        trend = await monitor.GetQueueTrend(pb.GetQueueTrendRequest(queue=name, hours=1))
        assert any(p.has_data for p in trend.points)
        jobs = await monitor.ListJobs(pb.ListJobsRequest(queue=name, page_size=100))
        assert sorted(j.job_id for j in jobs.jobs) == sorted(world.jobs[name])
        for job_id in world.jobs[name]:
            job = (await monitor.GetJob(pb.GetJobRequest(queue=name, job_id=job_id))).job
            assert job.summary.job_id == job_id and job.summary.HasField("create_time")
            assert not [t for t in job.timeline if t.kind == "note"]
    alpha, beta = listed["alpha"], listed["beta"]
    assert (alpha.status, alpha.counts.completed, alpha.counts.failed) == (pb.QUEUE_STATUS_IDLE, 3, 1)
    assert (beta.status, beta.counts.waiting, beta.status_reason) == (pb.QUEUE_STATUS_RUNNING, 2, "")
    workers = await monitor.ListWorkers(pb.ListWorkersRequest())
    assert sorted(w.report.worker_id for w in workers.workers) == ["worker-bad", "worker-beta"]


async def assert_no_http_error(world: World) -> dict[str, Any]:
    """Every read route of the gateway answers 200 for every queue and job; the JSON answers by path."""
    viewer = world.gateway.client("viewer")
    paths = ["/api/v1/overview", "/api/v1/queues", "/api/v1/workers"]
    for name in QUEUES:
        base = f"/api/v1/queues/{name}"
        paths += [base, base + "/trend?hours=1", base + "/jobs?pageSize=100"]
        paths += [f"{base}/jobs/{job_id}" for job_id in world.jobs[name]]
    answers = {}
    for path in paths:
        reply = await viewer.get(path)
        assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text}"
        answers[path] = reply.json()
    return answers


# --- a key of another type ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ("wait", "a list"),
        ("meta", "a hash"),
        ("delayed", "a sorted set"),
        ("completed", "a sorted set"),
        ("events", "a stream"),
    ],
)
async def test_a_key_of_another_type_degrades_its_queue_alone(world: World, part: str, expected: str) -> None:
    key = world.key("bad", part)
    await world.redis.delete(key)
    await world.redis.set(key, "x")
    reason = f"{key} is a string, expected {expected}"

    bad = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="bad"))).queue
    assert (bad.status, bad.status_reason) == (pb.QUEUE_STATUS_DEGRADED, reason)
    overview = await world.monitor.GetOverview(pb.GetOverviewRequest())
    assert list(overview.degraded_queues) == ["bad"]
    degraded = await world.monitor.ListQueues(pb.ListQueuesRequest(status=pb.QUEUE_STATUS_DEGRADED))
    assert [q.name for q in degraded.queues] == ["bad"]
    # Its jobs are still browsable (the broken state lists none) and each job still opens.
    listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", page_size=100))
    assert set(j.job_id for j in listed.jobs) <= set(world.jobs["bad"])
    for job_id in world.jobs["bad"]:
        await world.monitor.GetJob(pb.GetJobRequest(queue="bad", job_id=job_id))
    await world.monitor.GetQueueTrend(pb.GetQueueTrendRequest(queue="bad", hours=1))

    # The collector covers every other queue, and says why it could not cover this one.
    collected = await collect(world)
    assert sorted(s.queue for s in collected.snapshots) == list(HEALTHY)
    assert [(e.queue, e.message) for e in collected.errors] == [("bad", reason)]
    status = await world.collector.GetCollectorStatus(col_pb.GetCollectorStatusRequest())
    assert [(e.queue, e.message) for e in status.errors] == [("bad", reason)]

    await assert_healthy_queues_answer(world)
    answers = await assert_no_http_error(world)
    shown = answers["/api/v1/queues/bad"]["queue"]
    assert (shown["status"], shown["statusReason"]) == ("QUEUE_STATUS_DEGRADED", reason)


# --- one job's text and times ------------------------------------------------------------------------


async def test_text_that_is_not_utf8_is_shown_replaced_with_its_size(world: World) -> None:
    job_id = await bad_job(world, pb.JOB_STATE_WAITING)
    await world.redis.hset(
        world.key("bad", job_id),
        mapping={
            "name": b"report-\xff",
            "failedReason": b"upstream said \xc3\x28",
            "data": b'{"city": "K\xf6ln"}',
            "stacktrace": b'["Error: \xfe"]',
        },
    )
    listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", page_size=100))
    row = next(j for j in listed.jobs if j.job_id == job_id)
    assert (row.name, row.failed_reason) == (f"report-{REPLACED}", f"upstream said {REPLACED}(")
    job = (await world.monitor.GetJob(pb.GetJobRequest(queue="bad", job_id=job_id))).job
    assert (job.data, job.data_bytes) == (f'{{"city": "K{REPLACED}ln"}}', 16)
    assert list(job.stacktrace) == [f"Error: {REPLACED}"]
    assert [t.detail for t in job.timeline if t.kind == "note"] == [
        "name is not valid UTF-8 (8 bytes): shown with U+FFFD replacement characters",
        "failedReason is not valid UTF-8 (16 bytes): shown with U+FFFD replacement characters",
        "stacktrace is not valid UTF-8 (12 bytes): shown with U+FFFD replacement characters",
        "data is not valid UTF-8 (16 bytes): shown with U+FFFD replacement characters",
    ]
    # One job's bytes are that job's business: the queue is as it was.
    bad = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="bad"))).queue
    assert (bad.status, bad.status_reason) == (pb.QUEUE_STATUS_RUNNING, "")
    collected = await collect(world)
    assert not collected.errors and sorted(s.queue for s in collected.snapshots) == list(QUEUES)

    await assert_healthy_queues_answer(world)
    answers = await assert_no_http_error(world)
    shown = answers[f"/api/v1/queues/bad/jobs/{job_id}"]["job"]
    assert shown["summary"]["name"] == f"report-{REPLACED}" and shown["dataBytes"] == "16"


@pytest.mark.parametrize("stored", ["abc", "", "1e999", "-5"])
async def test_times_that_are_not_numbers_are_unknown(world: World, stored: str) -> None:
    # The job next in line (the oldest waiting) is the one the queue's latency is measured from.
    waiting = (
        await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", states=[pb.JOB_STATE_WAITING]))
    ).jobs
    head = waiting[-1].job_id
    done = await bad_job(world, pb.JOB_STATE_COMPLETED)
    await world.redis.hset(world.key("bad", head), "timestamp", stored)
    await world.redis.hset(world.key("bad", done), mapping={"processedOn": stored, "finishedOn": "1e999"})

    listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", page_size=100))
    rows = {j.job_id: j for j in listed.jobs}
    assert not rows[head].HasField("create_time")
    finished = rows[done]
    assert finished.HasField("create_time") and not finished.HasField("process_time")
    assert not finished.HasField("finish_time") and not finished.HasField("duration_ms")
    job = (await world.monitor.GetJob(pb.GetJobRequest(queue="bad", job_id=head))).job
    assert [(t.kind, t.detail) for t in job.timeline] == [
        ("note", f"timestamp {stored!r} is not a time: shown as unknown")
    ]

    # Latency comes from the collector's reading of the head job: absent, not 57 years or negative.
    collected = await collect(world)
    rows_by_queue = {s.queue: s for s in collected.snapshots}
    assert not collected.errors and sorted(rows_by_queue) == list(QUEUES)
    assert not rows_by_queue["bad"].HasField("oldest_waiting_ms")
    assert rows_by_queue["beta"].HasField("oldest_waiting_ms")
    bad = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="bad"))).queue
    assert not bad.HasField("latency_ms") and bad.status == pb.QUEUE_STATUS_RUNNING
    beta = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="beta"))).queue
    assert 0 <= beta.latency_ms < 3_600_000

    await assert_healthy_queues_answer(world)
    answers = await assert_no_http_error(world)
    assert "latencyMs" not in answers["/api/v1/queues/bad"]["queue"]


async def test_a_job_key_of_another_type_is_listed_with_a_note(world: World) -> None:
    job_id = await bad_job(world, pb.JOB_STATE_WAITING)
    key = world.key("bad", job_id)
    await world.redis.delete(key)
    await world.redis.set(key, "not a hash")
    listed = await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", page_size=100))
    row = next(j for j in listed.jobs if j.job_id == job_id)
    assert (row.state, row.name, row.HasField("create_time")) == (pb.JOB_STATE_WAITING, "", False)
    job = (await world.monitor.GetJob(pb.GetJobRequest(queue="bad", job_id=job_id))).job
    assert [(t.kind, t.detail) for t in job.timeline] == [("note", f"{key} is a string, expected a hash")]
    bad = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="bad"))).queue
    assert bad.status == pb.QUEUE_STATUS_RUNNING and bad.counts.waiting == 2
    collected = await collect(world)
    assert not collected.errors and sorted(s.queue for s in collected.snapshots) == list(QUEUES)

    await assert_healthy_queues_answer(world)
    await assert_no_http_error(world)


# --- the event stream ----------------------------------------------------------------------------


async def test_garbage_in_the_event_stream_is_skipped_and_counted(world: World) -> None:
    collector = world.collector_parts
    follower = collector.follower
    before = (await follower.minutes(["bad"], minute_of(int(time.time() * 1000))))["bad"]
    stream = world.key("bad", "events")
    garbage = [
        await world.redis.xadd(stream, {"event": "completed"}),  # no jobId
        await world.redis.xadd(stream, {"jobId": "1", "returnvalue": "{}"}),  # no event
        await world.redis.xadd(stream, {"event": "failed", "jobId": ""}),
    ]
    # Numbers that are not numbers in a real event's fields: still an event, nothing counted from it.
    await world.redis.xadd(stream, {"event": "retries-exhausted", "jobId": "1", "attemptsMade": "x"})
    await world.redis.xadd(stream, {"event": "delayed", "jobId": "1", "delay": "soon"})

    async def process(job: Job, token: str) -> str:
        return "ok"

    worker = world.gateway.worker("bad", process)
    try:
        await until_finished(world.queues["bad"], completed=3)
    finally:
        await worker.close()
    await collector.follow_all()

    after = (await follower.minutes(["bad"], minute_of(int(time.time() * 1000))))["bad"]
    assert after.completed_cumulative - before.completed_cumulative == 2
    assert after.failed_cumulative == before.failed_cumulative
    minutes = sorted({minute_of(int(g.decode().split("-")[0])) for g in garbage})
    skipped = 0
    for minute in minutes:
        cycle = await collector.collect(minute_ms=minute)
        assert not cycle.errors and sorted(r.queue for r in cycle.rows) == list(QUEUES)
        skipped += cycle.skipped_events.get("bad", 0)
        assert set(cycle.skipped_events) <= {"bad"}
    assert skipped == len(garbage)
    published = await collector.status()
    assert published is not None and set(published["skipped_events"]) <= {"bad"}
    await world.refresh()

    bad = (await world.monitor.GetQueue(pb.GetQueueRequest(queue="bad"))).queue
    assert bad.status == pb.QUEUE_STATUS_IDLE and bad.counts.completed == 3
    world.jobs["bad"] = [
        j.job_id for j in (await world.monitor.ListJobs(pb.ListJobsRequest(queue="bad", page_size=100))).jobs
    ]
    await assert_healthy_queues_answer(world)
    await assert_no_http_error(world)


async def until_finished(queue: Queue, completed: int) -> None:
    async def reached() -> bool:
        counts = await queue.getJobCounts("completed")
        return bool(counts["completed"] >= completed)

    await until(reached, what=f"{completed} completed")


async def test_refusals_keep_their_codes_beside_a_broken_queue(world: World) -> None:
    # The RPCs that refuse keep refusing with their own codes, whatever else is broken.
    await world.redis.delete(world.key("bad", "wait"))
    await world.redis.set(world.key("bad", "wait"), "x")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await world.monitor.GetQueue(pb.GetQueueRequest(queue="missing"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await world.monitor.GetJob(pb.GetJobRequest(queue="bad", job_id="404"))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
