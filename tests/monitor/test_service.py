"""MonitorService over gRPC with HeartbeatService and CollectorService in the same server, on real BullMQ."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker
from google.protobuf import duration_pb2

from tests.support.bull import delete_prefix, until
from tests.support.heartbeat import report as hb_report
from tests.support.nodejs import start_produce
from tests.support.suites import start_local_suite, start_modules
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info
from workermon_core.server import SuiteServer
from workermon_monitor import service as monitor_service
from workermon_sdk.bullmq import InstrumentedWorker


@dataclass
class Suite:
    server: SuiteServer
    parts: monitor_service.MonitorParts
    authority: TokenAuthority
    redis_url: str
    queue_prefix: str
    channels: list[grpc.aio.Channel]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def client(self, role: str, subject: str | None = None) -> pb_grpc.MonitorServiceStub:
        # Keep the channel referenced: a garbage-collected aio channel closes under its stub.
        channel = open_channel(self.target, self.authority.mint(subject or f"{role}-user", role))
        self.channels.append(channel)
        return pb_grpc.MonitorServiceStub(channel)

    def queue(self, name: str) -> Queue:
        return Queue(name, {"connection": self.redis_url, "prefix": self.queue_prefix})

    def worker(self, name: str, processor: Callable[..., Awaitable[Any]], **opts: Any) -> Worker:
        return Worker(name, processor, {"connection": self.redis_url, "prefix": self.queue_prefix, **opts})


async def build_suite(
    tmp_path: Path,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    database_url: str | None = None,
    **overrides: Any,
) -> tuple[Suite, Callable[[], Awaitable[None]]]:
    local = await start_local_suite(
        tmp_path, redis, redis_url, prefix, authority, database_url=database_url, **overrides
    )
    suite = Suite(local.server, local.parts["monitor"], authority, redis_url, local.queue_prefix, [])

    async def stop() -> None:
        for channel in suite.channels:
            await channel.close()
        await local.stop()

    return suite, stop


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[Suite]:
    built, stop = await build_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        backlog_threshold=20,
        queue_display_names="emails=E-mails",
    )
    yield built
    await stop()


def code_of(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> grpc.StatusCode:
    return exc.value.code()


async def audit_rows(suite: Suite, **filters: Any) -> list[pb.AuditLog]:
    reply = await suite.client("viewer").ListAuditLogs(pb.ListAuditLogsRequest(page_size=200, **filters))
    return list(reply.audit_logs)


async def fill(queue: Queue, n: int, name: str = "job", **opts: Any) -> list[Job]:
    return [await queue.add(name, {"i": i}, opts) for i in range(n)]


async def fail_and_complete(suite: Suite, queue: Queue, completed: int, failed: int) -> None:
    async def process(job: Job, token: str) -> Any:
        if job.data.get("fail"):
            raise RuntimeError("connect ECONNREFUSED 10.0.0.1:5432\nstack line")
        return {"ok": job.data["i"]}

    for i in range(completed):
        await queue.add("ok", {"i": i})
    for i in range(failed):
        await queue.add("bad", {"i": i, "fail": True})
    worker = suite.worker(queue.name, process)
    try:
        await until(
            lambda: _counts_reached(queue, completed, failed), what=f"{completed} completed / {failed} failed"
        )
    finally:
        await worker.close()


async def _counts_reached(queue: Queue, completed: int, failed: int) -> bool:
    counts = await queue.getJobCounts("completed", "failed")
    return bool(counts["completed"] == completed and counts["failed"] == failed)


# --- Queries ----------------------------------------------------------------------------------------


async def test_overview_and_queue_list_reflect_redis(suite: Suite) -> None:
    emails, reports, idle = suite.queue("emails"), suite.queue("reports"), suite.queue("idle")
    try:
        await fail_and_complete(suite, emails, completed=5, failed=2)
        await fill(emails, 3)
        await emails.pause()
        await fill(reports, 25)
        await fill(idle, 1)
        await idle.drain()
        viewer = suite.client("viewer")

        listed = (await viewer.ListQueues(pb.ListQueuesRequest())).queues
        by_name = {q.name: q for q in listed}
        assert sorted(by_name) == ["emails", "idle", "reports"]
        e = by_name["emails"]
        assert e.display_name == "E-mails" and e.paused and e.status == pb.QUEUE_STATUS_PAUSED
        assert (e.counts.completed, e.counts.failed, e.counts.waiting) == (5, 2, 3)
        r = by_name["reports"]
        assert r.status == pb.QUEUE_STATUS_DEGRADED and "25 jobs waiting" in r.status_reason
        assert by_name["idle"].status == pb.QUEUE_STATUS_IDLE

        overview = await viewer.GetOverview(pb.GetOverviewRequest())
        assert overview.queues_total == 3
        assert (
            overview.counts.waiting == 28 and overview.counts.completed == 5 and overview.counts.failed == 2
        )
        assert list(overview.paused_queues) == ["emails"] and list(overview.degraded_queues) == ["reports"]
        assert overview.workers_online == 0
        assert len(overview.active_incidents) == 0

        only = await viewer.ListQueues(pb.ListQueuesRequest(status=pb.QUEUE_STATUS_DEGRADED))
        assert [q.name for q in only.queues] == ["reports"]
        assert [q.name for q in (await viewer.ListQueues(pb.ListQueuesRequest(name_prefix="em"))).queues] == [
            "emails"
        ]
        one = await viewer.GetQueue(pb.GetQueueRequest(queue="reports"))
        assert one.queue.counts.waiting == 25
    finally:
        for q in (emails, reports, idle):
            await q.close()


async def test_history_reaches_queues_and_trend_after_a_collection(suite: Suite) -> None:
    emails = suite.queue("emails")
    try:
        await fail_and_complete(suite, emails, completed=4, failed=1)
        admin = suite.client("admin")
        from workermon.collector.v1 import collector_service_pb2 as col_pb
        from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc

        channel = open_channel(suite.target, suite.authority.mint("t", "admin"))
        suite.channels.append(channel)
        await col_grpc.CollectorServiceStub(channel).CollectNow(col_pb.CollectNowRequest(queues=["emails"]))
        await suite.parts.board.refresh()
        queue = (await admin.GetQueue(pb.GetQueueRequest(queue="emails"))).queue
        assert queue.HasField("metrics_minute_time")
        overview = await admin.GetOverview(pb.GetOverviewRequest())
        assert overview.HasField("metrics_minute_time")
        trend = await admin.GetQueueTrend(pb.GetQueueTrendRequest(queue="emails", hours=1))
        assert trend.resolution == "minute" and 60 <= len(trend.points) <= 61
        assert any(p.has_data for p in trend.points)
        # A queue with no history yet has an empty trend, not an error.
        fresh = suite.queue("fresh")
        await fresh.add("x", {})
        empty = await admin.GetQueueTrend(pb.GetQueueTrendRequest(queue="fresh", hours=1))
        assert len(empty.points) == 0
        await fresh.close()
    finally:
        await emails.close()


async def test_bad_inputs_get_clear_codes(suite: Suite) -> None:
    viewer = suite.client("viewer")
    q = suite.queue("known")
    await q.add("x", {})
    try:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.GetQueue(pb.GetQueueRequest(queue="nope"))
        assert code_of(exc) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.GetQueue(pb.GetQueueRequest(queue="x" * 300))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT and "queue" in (exc.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.ListJobs(pb.ListJobsRequest(queue="nope"))
        assert code_of(exc) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.ListJobs(pb.ListJobsRequest(queue="known", page_token="garbage"))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in (
            exc.value.details() or ""
        )
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.ListJobs(pb.ListJobsRequest(queue="known", page_size=-1))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.GetQueueTrend(pb.GetQueueTrendRequest(queue="known", hours=10_000))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT and "hours" in (exc.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.GetJob(pb.GetJobRequest(queue="known", job_id="404"))
        assert code_of(exc) == grpc.StatusCode.NOT_FOUND
    finally:
        await q.close()


# --- Jobs -------------------------------------------------------------------------------------------


async def test_list_and_get_jobs(suite: Suite) -> None:
    q = suite.queue("jobs")
    try:
        await fail_and_complete(suite, q, completed=150, failed=3)
        big = await q.add("big", {"blob": "x" * 200_000})
        viewer = suite.client("viewer")
        # page_size above the maximum is lowered to it (AIP-158).
        first = await viewer.ListJobs(
            pb.ListJobsRequest(queue="jobs", states=[pb.JOB_STATE_COMPLETED], page_size=1000)
        )
        assert len(first.jobs) == 100 and first.total_size == 150 and first.next_page_token
        second = await viewer.ListJobs(
            pb.ListJobsRequest(
                queue="jobs",
                states=[pb.JOB_STATE_COMPLETED],
                page_size=1000,
                page_token=first.next_page_token,
            )
        )
        ids = [j.job_id for j in first.jobs] + [j.job_id for j in second.jobs]
        assert len(ids) == len(set(ids)) == 150 and not second.next_page_token
        # The token is bound to its filters.
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await viewer.ListJobs(
                pb.ListJobsRequest(
                    queue="jobs", states=[pb.JOB_STATE_FAILED], page_token=first.next_page_token
                )
            )
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT

        failed = await viewer.ListJobs(pb.ListJobsRequest(queue="jobs", states=[pb.JOB_STATE_FAILED]))
        assert [j.state for j in failed.jobs] == [pb.JOB_STATE_FAILED] * 3
        row = failed.jobs[0]
        assert row.failed_reason == "connect ECONNREFUSED 10.0.0.1:5432" and row.failure_category == "network"
        assert row.HasField("finish_time") and row.attempts_made == 1
        network = await viewer.ListJobs(pb.ListJobsRequest(queue="jobs", failure_category="network"))
        assert len(network.jobs) == 3
        by_name = await viewer.ListJobs(pb.ListJobsRequest(queue="jobs", name_prefix="bi"))
        assert [j.job_id for j in by_name.jobs] == [big.id]
        by_id = await viewer.ListJobs(pb.ListJobsRequest(queue="jobs", job_id=row.job_id))
        assert [j.job_id for j in by_id.jobs] == [row.job_id]

        detail = (await viewer.GetJob(pb.GetJobRequest(queue="jobs", job_id=big.id))).job
        assert detail.data_truncated and len(detail.data) == 65_536 and detail.data_bytes > 200_000
        assert detail.summary.state == pb.JOB_STATE_WAITING
        whole = (await viewer.GetJob(pb.GetJobRequest(queue="jobs", job_id=big.id, full=True))).job
        assert not whole.data_truncated and json.loads(whole.data)["blob"] == "x" * 200_000
        done = (await viewer.GetJob(pb.GetJobRequest(queue="jobs", job_id=row.job_id))).job
        assert done.failed_reason.startswith("connect ECONNREFUSED") and done.stacktrace
        assert [t.kind for t in done.timeline][:1] == ["created"]
    finally:
        await q.close()


# --- Actions and the audit log ------------------------------------------------------------------------


async def test_queue_actions_change_redis_and_are_audited(suite: Suite) -> None:
    q = suite.queue("acts")
    try:
        await fail_and_complete(suite, q, completed=2, failed=4)
        await fill(q, 5, name="later", delay=60_000)
        await fill(q, 3)
        operator, admin = suite.client("operator", "olivia"), suite.client("admin", "adam")

        paused = await operator.PauseQueue(pb.PauseQueueRequest(queue="acts", reason="deploy"))
        assert paused.changed and paused.audit_id > 0 and await q.isPaused()
        assert not (await operator.PauseQueue(pb.PauseQueueRequest(queue="acts"))).changed
        assert (await operator.ResumeQueue(pb.ResumeQueueRequest(queue="acts"))).changed
        assert not await q.isPaused()

        assert (await operator.RetryFailedJobs(pb.RetryFailedJobsRequest(queue="acts", limit=1))).retried == 1
        assert (await q.getJobCounts("failed"))["failed"] == 3
        assert (await operator.RetryFailedJobs(pb.RetryFailedJobsRequest(queue="acts"))).retried == 3
        assert (
            await operator.PromoteDelayedJobs(pb.PromoteDelayedJobsRequest(queue="acts", limit=2))
        ).promoted == 2
        assert (await q.getJobCounts("delayed"))["delayed"] == 3

        added = await operator.AddJob(
            pb.AddJobRequest(queue="acts", name="rerun", data='{"x": 1}', priority=5, attempts=3)
        )
        assert added.job.name == "rerun" and added.job.max_attempts == 3

        # Destructive actions: confirmation refused (and audited), then done.
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await admin.DrainQueue(pb.DrainQueueRequest(queue="acts", confirm="act"))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT and "confirm" in (exc.value.details() or "")
        waiting_before = await q.getJobCounts("wait", "prioritized")
        drained = await admin.DrainQueue(pb.DrainQueueRequest(queue="acts", confirm="acts"))
        assert drained.removed == waiting_before["wait"] + waiting_before["prioritized"] > 0
        cleaned = await admin.CleanQueue(
            pb.CleanQueueRequest(queue="acts", state=pb.JOB_STATE_COMPLETED, limit=0, confirm="acts")
        )
        assert cleaned.removed == 2 and len(cleaned.sample_job_ids) == 2

        # Denied for role: the operator may not drain, the viewer may not pause; both recorded.
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.DrainQueue(pb.DrainQueueRequest(queue="acts", confirm="acts"))
        assert code_of(exc) == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await suite.client("viewer", "vic").PauseQueue(pb.PauseQueueRequest(queue="acts"))
        assert code_of(exc) == grpc.StatusCode.PERMISSION_DENIED
        info = error_info(exc.value)
        assert info is not None and info.metadata["required_role"] == "operator"
        assert not await q.isPaused()

        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.PauseQueue(pb.PauseQueueRequest(queue="missing-queue"))
        assert code_of(exc) == grpc.StatusCode.NOT_FOUND

        rows = await audit_rows(suite, queue="acts")
        seen = [
            (pb.AuditAction.Name(r.action), pb.AuditOutcome.Name(r.outcome), r.actor) for r in reversed(rows)
        ]
        assert seen == [
            ("AUDIT_ACTION_QUEUE_PAUSE", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_PAUSE", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_RESUME", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_RETRY_FAILED", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_RETRY_FAILED", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_PROMOTE_DELAYED", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_JOB_ADD", "AUDIT_OUTCOME_SUCCEEDED", "olivia"),
            ("AUDIT_ACTION_QUEUE_DRAIN", "AUDIT_OUTCOME_REFUSED", "adam"),
            ("AUDIT_ACTION_QUEUE_DRAIN", "AUDIT_OUTCOME_SUCCEEDED", "adam"),
            ("AUDIT_ACTION_QUEUE_CLEAN", "AUDIT_OUTCOME_SUCCEEDED", "adam"),
            ("AUDIT_ACTION_QUEUE_DRAIN", "AUDIT_OUTCOME_DENIED", "olivia"),
            ("AUDIT_ACTION_QUEUE_PAUSE", "AUDIT_OUTCOME_DENIED", "vic"),
        ]
        assert rows[-1].parameters["reason"] == "deploy" and rows[-1].result["changed"] is True
        assert rows[-1].role == "operator" and rows[-1].request_id
        missing = await audit_rows(suite, queue="missing-queue")
        assert [pb.AuditOutcome.Name(r.outcome) for r in missing] == ["AUDIT_OUTCOME_FAILED"]
        assert "does not exist" in missing[0].result["error"] or "missing-queue" in missing[0].result["error"]
        # Filters and pagination over the log.
        denied = await audit_rows(suite, outcome=pb.AUDIT_OUTCOME_DENIED, queue="acts")
        assert len(denied) == 2
        page = await suite.client("viewer").ListAuditLogs(pb.ListAuditLogsRequest(queue="acts", page_size=5))
        rest = await suite.client("viewer").ListAuditLogs(
            pb.ListAuditLogsRequest(queue="acts", page_size=50, page_token=page.next_page_token)
        )
        assert [r.id for r in page.audit_logs] + [r.id for r in rest.audit_logs] == [r.id for r in rows]
    finally:
        await q.close()


async def test_job_actions(suite: Suite) -> None:
    q = suite.queue("jobacts")
    try:
        await fail_and_complete(suite, q, completed=0, failed=1)
        failed = (await q.getFailed())[0]
        later = await q.add("later", {}, {"delay": 60_000})
        waiting = await q.add("now", {})
        operator, admin = suite.client("operator"), suite.client("admin")
        retried = await operator.RetryJob(pb.RetryJobRequest(queue="jobacts", job_id=failed.id))
        assert retried.previous_state == pb.JOB_STATE_FAILED
        assert await q.getJobState(failed.id) == "waiting"
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.RetryJob(pb.RetryJobRequest(queue="jobacts", job_id=failed.id))
        assert code_of(exc) == grpc.StatusCode.FAILED_PRECONDITION
        await operator.PromoteJob(pb.PromoteJobRequest(queue="jobacts", job_id=later.id))
        assert await q.getJobState(later.id) == "waiting"
        cancelled = await admin.CancelJob(pb.CancelJobRequest(queue="jobacts", job_id=waiting.id))
        assert (
            cancelled.outcome == pb.CANCEL_OUTCOME_REMOVED
            and cancelled.previous_state == pb.JOB_STATE_WAITING
        )
        assert await q.getJobState(waiting.id) == "unknown"
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.CancelJob(pb.CancelJobRequest(queue="jobacts", job_id=later.id))
        assert code_of(exc) == grpc.StatusCode.PERMISSION_DENIED
        rows = await audit_rows(suite, queue="jobacts")
        assert {pb.AuditAction.Name(r.action) for r in rows} == {
            "AUDIT_ACTION_JOB_RETRY",
            "AUDIT_ACTION_JOB_PROMOTE",
            "AUDIT_ACTION_JOB_CANCEL",
        }
        assert all(r.entity_type == "job" and r.entity_id.startswith("jobacts/") for r in rows)
    finally:
        await q.close()


async def test_cancel_of_a_running_job(suite: Suite) -> None:
    q = suite.queue("long")
    started = asyncio.Event()

    async def slow(job: Job, token: str) -> Any:
        started.set()
        await asyncio.sleep(60)

    worker = InstrumentedWorker(
        "long",
        slow,
        {"connection": suite.redis_url, "prefix": suite.queue_prefix},
        target=suite.target,
        token=suite.authority.mint("w", "worker", worker="*"),
    )
    await worker.start()
    plain_started = asyncio.Event()

    async def plain(job: Job, token: str) -> Any:
        plain_started.set()
        await asyncio.sleep(60)

    plain_queue = suite.queue("plain")
    plain_worker = suite.worker("plain", plain)
    try:
        job = await q.add("slow", {})
        await asyncio.wait_for(started.wait(), 20)
        admin = suite.client("admin")

        async def reported() -> bool:
            workers = await admin.ListWorkers(pb.ListWorkersRequest(queue="long"))
            return any(job.id in w.report.active_job_ids for w in workers.workers)

        await until(reported, what="the worker reporting the job")
        detail = (await admin.GetJob(pb.GetJobRequest(queue="long", job_id=job.id))).job
        assert detail.summary.state == pb.JOB_STATE_ACTIVE and detail.worker_id
        reply = await admin.CancelJob(pb.CancelJobRequest(queue="long", job_id=job.id, reason="stuck"))
        assert reply.outcome == pb.CANCEL_OUTCOME_CANCELLED, reply
        assert reply.previous_state == pb.JOB_STATE_ACTIVE and reply.worker_id == detail.worker_id
        await until(lambda: _state_is(q, job.id, "failed"), what="the cancelled job failing")

        other = await plain_queue.add("slow", {})
        await asyncio.wait_for(plain_started.wait(), 20)
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await admin.CancelJob(pb.CancelJobRequest(queue="plain", job_id=other.id))
        assert code_of(exc) == grpc.StatusCode.FAILED_PRECONDITION
        assert "instrumented" in (exc.value.details() or "")
        rows = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_CANCEL)
        outcomes = {r.entity_id: pb.AuditOutcome.Name(r.outcome) for r in rows}
        assert outcomes == {
            f"long/{job.id}": "AUDIT_OUTCOME_SUCCEEDED",
            f"plain/{other.id}": "AUDIT_OUTCOME_FAILED",
        }
    finally:
        await worker.close()
        await plain_worker.close(force=True)
        await q.close()
        await plain_queue.close()


async def _state_is(queue: Queue, job_id: str, state: str) -> bool:
    return bool(await queue.getJobState(job_id) == state)


async def test_worker_commands_and_transitions_are_audited(suite: Suite) -> None:
    async def quick(job: Job, token: str) -> Any:
        return None

    worker = InstrumentedWorker(
        "w-queue",
        quick,
        {"connection": suite.redis_url, "prefix": suite.queue_prefix},
        target=suite.target,
        token=suite.authority.mint("w", "worker", worker="worker-a"),
        worker_id="worker-a",
    )
    await worker.start()
    try:
        operator, admin = suite.client("operator", "olivia"), suite.client("admin")
        await until(lambda: _online(admin, "worker-a"), what="worker-a online")
        quiet = await operator.QuietWorker(pb.QuietWorkerRequest(worker_id="worker-a", reason="maintenance"))
        assert quiet.command.type == hb_pb.COMMAND_TYPE_QUIET and quiet.command.requested_by == "olivia"
        await operator.ResumeWorker(pb.ResumeWorkerRequest(worker_id="worker-a"))
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.StopWorker(pb.StopWorkerRequest(worker_id="worker-a", confirm="worker-a"))
        assert code_of(exc) == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await admin.StopWorker(pb.StopWorkerRequest(worker_id="worker-a"))
        assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await admin.QuietWorker(pb.QuietWorkerRequest(worker_id="nobody"))
        assert code_of(exc) == grpc.StatusCode.NOT_FOUND
        stop = await admin.StopWorker(pb.StopWorkerRequest(worker_id="worker-a", confirm="worker-a"))
        assert stop.command.type == hb_pb.COMMAND_TYPE_STOP

        async def transitions() -> bool:
            rows = await audit_rows(suite, entity_id="worker-a", actor="system")
            return {pb.AuditAction.Name(r.action) for r in rows} >= {
                "AUDIT_ACTION_WORKER_ONLINE",
                "AUDIT_ACTION_WORKER_OFFLINE",
            }

        await until(transitions, what="online and offline transitions in the audit log")
        rows = await audit_rows(suite, entity_type="worker", entity_id="worker-a")
        names = [pb.AuditAction.Name(r.action) for r in reversed(rows) if r.actor != "system"]
        assert names == [
            "AUDIT_ACTION_WORKER_QUIET",
            "AUDIT_ACTION_WORKER_RESUME",
            "AUDIT_ACTION_WORKER_STOP",
            "AUDIT_ACTION_WORKER_STOP",
            "AUDIT_ACTION_WORKER_STOP",
        ]
        online = [r for r in rows if r.action == pb.AUDIT_ACTION_WORKER_ONLINE]
        assert len(online) == 1, "a transition is recorded once"
    finally:
        await worker.close()


async def test_list_workers_searches_and_pages(suite: Suite) -> None:
    channel = open_channel(suite.target, suite.authority.mint("beats", "worker", worker="*"))
    try:
        beats = hb_pb_grpc.HeartbeatServiceStub(channel)
        for i in range(7):
            host = "Batch-Node" if i % 2 else f"web-{i}"
            await beats.Beat(hb_pb.BeatRequest(report=hb_report(f"search-{i}", hostname=host)), timeout=10)
        await beats.Beat(hb_pb.BeatRequest(report=hb_report("other-1", hostname="db-1")), timeout=10)
    finally:
        await channel.close()
    viewer = suite.client("viewer")

    async def listed(**fields: Any) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            page = await viewer.ListWorkers(pb.ListWorkersRequest(page_token=token, **fields))
            seen += [w.report.worker_id for w in page.workers]
            token = page.next_page_token
            if not token:
                return seen

    assert await listed(search="SEARCH-") == [f"search-{i}" for i in range(7)]
    assert await listed(search="batch-node", page_size=2) == ["search-1", "search-3", "search-5"]
    assert await listed(search="DB-", status=pb.WORKER_STATUS_ONLINE) == ["other-1"]
    assert await listed(search="db-", status=pb.WORKER_STATUS_OFFLINE) == []
    assert await listed(search="no such worker") == []
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await viewer.ListWorkers(pb.ListWorkersRequest(search="x" * 201))
    assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(exc.value)
    assert info is not None and info.metadata["field"] == "search"


async def _online(client: pb_grpc.MonitorServiceStub, worker_id: str) -> bool:
    try:
        reply = await client.GetWorker(pb.GetWorkerRequest(worker_id=worker_id))
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.worker.status == hb_pb.WORKER_STATUS_ONLINE)


async def test_create_audit_log_for_incidents(suite: Suite) -> None:
    admin = suite.client("admin", "incidents")
    entry = pb.AuditLog(
        actor="olivia",
        role="operator",
        action=pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE,
        entity_type="incident",
        entity_id="inc-1",
        queue="emails",
        outcome=pb.AUDIT_OUTCOME_SUCCEEDED,
        request_id="req-1",
    )
    entry.parameters.update({"note": "looking"})
    written = (await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry))).audit_log
    assert written.id > 0 and written.actor == "olivia" and written.parameters["note"] == "looking"
    bad = pb.AuditLog(action=pb.AUDIT_ACTION_QUEUE_PAUSE, entity_id="x", outcome=pb.AUDIT_OUTCOME_SUCCEEDED)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=bad))
    assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await suite.client("operator").CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry))
    assert code_of(exc) == grpc.StatusCode.PERMISSION_DENIED


async def test_create_audit_log_with_a_request_id_writes_once(suite: Suite) -> None:
    admin = suite.client("admin", "incidents")
    entry = pb.AuditLog(
        actor="adam",
        role="admin",
        action=pb.AUDIT_ACTION_INCIDENT_RESOLVE,
        entity_type="incident",
        entity_id="inc-7",
        outcome=pb.AUDIT_OUTCOME_SUCCEEDED,
    )
    key = "3f1c8e3a-6a43-4d4e-9a53-0f6b1c9f2e11"
    first = (await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry, request_id=key))).audit_log
    # A retry (the reply lost, or the outbox sweep sending what its request already sent) adds nothing.
    again = (await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry, request_id=key))).audit_log
    assert again == first
    other = (
        await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry, request_id=key + "-2"))
    ).audit_log
    plain = (await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry))).audit_log
    assert len({first.id, other.id, plain.id}) == 3
    listed = await admin.ListAuditLogs(pb.ListAuditLogsRequest(entity_id="inc-7"))
    assert sorted(a.id for a in listed.audit_logs) == sorted({first.id, other.id, plain.id})
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await admin.CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry, request_id="x" * 65))
    assert code_of(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in (exc.value.details() or "")


async def test_no_action_when_the_audit_log_cannot_be_written(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    built, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority)
    q = built.queue("guarded")
    try:
        await q.add("x", {})
        operator = built.client("operator")
        # The database goes away: its file is made unreadable by replacing the engine's URL target.
        await built.parts.audit_store.engine.dispose()
        (tmp_path / "wm.db").unlink()
        (tmp_path / "wm.db").mkdir()
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await operator.PauseQueue(pb.PauseQueueRequest(queue="guarded"))
        assert code_of(exc) == grpc.StatusCode.UNAVAILABLE and "audit" in (exc.value.details() or "")
        assert not await q.isPaused()
    finally:
        await q.close()
        await stop()


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(int(seconds * 1000))
    return d


async def test_board_answers_without_its_peers(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    # MonitorService alone, its HeartbeatService and CollectorService unreachable (e.g. restarting).
    queue_prefix = "wmq-" + uuid.uuid4().hex[:10]
    suite = await start_modules(
        "monitor",
        authority=authority,
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'alone.db'}",
        redis_prefix=prefix,
        queue_prefix=queue_prefix,
        heartbeat_target="127.0.0.1:1",
        collector_target="127.0.0.1:1",
        live_max_age_seconds=0,
    )
    server = suite.server
    assert server is not None
    channel = open_channel(f"127.0.0.1:{server.port}", authority.mint("v", "viewer"))
    client = pb_grpc.MonitorServiceStub(channel)
    q = Queue("alone", {"connection": redis_url, "prefix": queue_prefix})
    try:
        await q.add("x", {})
        listed = (await client.ListQueues(pb.ListQueuesRequest())).queues
        assert [x.name for x in listed] == ["alone"] and listed[0].counts.waiting == 1
        assert not listed[0].HasField("online_workers") and not listed[0].HasField("metrics_minute_time")
        # Unknown worker counts never make a queue DEGRADED for "no online worker".
        assert listed[0].status == pb.QUEUE_STATUS_RUNNING
        overview = await client.GetOverview(pb.GetOverviewRequest())
        assert overview.counts.waiting == 1 and not overview.HasField("success_rate_24h")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.ListWorkers(pb.ListWorkersRequest())
        assert code_of(exc) == grpc.StatusCode.UNAVAILABLE
        info = error_info(exc.value)
        assert info is not None and info.reason == "PEER_UNAVAILABLE"
    finally:
        await q.close()
        await channel.close()
        await suite.stop()
        await delete_prefix(redis, queue_prefix)


async def test_a_node_bullmq_queue_through_the_service(suite: Suite) -> None:
    # Jobs added and processed by Node BullMQ (tests/node/produce.mjs) read and acted on over gRPC.
    running = await start_produce(suite.redis_url, suite.queue_prefix, "nodeq", "mixed")
    try:
        viewer, operator = suite.client("viewer"), suite.client("operator")

        async def settled() -> bool:
            queue = (await viewer.GetQueue(pb.GetQueueRequest(queue="nodeq"))).queue
            c = queue.counts
            return (c.completed, c.failed, c.delayed, c.active, c.waiting) == (4, 2, 2, 0, 0)

        await until(settled, what="the Node worker finishing its jobs")
        failed = await viewer.ListJobs(pb.ListJobsRequest(queue="nodeq", states=[pb.JOB_STATE_FAILED]))
        assert [j.failure_category for j in failed.jobs] == ["network", "network"]
        done = await viewer.ListJobs(pb.ListJobsRequest(queue="nodeq", states=[pb.JOB_STATE_COMPLETED]))
        detail = (await viewer.GetJob(pb.GetJobRequest(queue="nodeq", job_id=done.jobs[-1].job_id))).job
        assert detail.processed_by == "node-worker-1" and detail.logs and detail.return_value
        retried = await operator.RetryFailedJobs(pb.RetryFailedJobsRequest(queue="nodeq"))
        assert retried.retried == 2

        async def node_completed_them() -> bool:
            queue = (await viewer.GetQueue(pb.GetQueueRequest(queue="nodeq"))).queue
            return queue.counts.completed == 6 and queue.counts.failed == 0

        await until(node_completed_them, what="Node's worker completing the retried jobs")
    finally:
        await running.stop()
