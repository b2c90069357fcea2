"""Every MonitorService RPC against the suite and demo workload that `make run` starts."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import duration_pb2

from tests.support.bull import delete_prefix
from tests.support.suites import Config, start_config
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_cli.demo import NODE_WORKER_ID, start_demo
from workermon_cli.monitor_cmd import show_audit, show_queues
from workermon_core.client import open_channel


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 40.0) -> None:
    deadline = time.monotonic() + limit
    while not await check():
        assert time.monotonic() < deadline, f"{what} not reached within {limit}s"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(180)
async def test_every_monitor_rpc_on_the_demo_workload(
    tmp_path: Path, redis_url: str, redis: aioredis.Redis, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    queue_prefix = "wmdemo-" + uuid.uuid4().hex[:8]
    config = Config(
        data_dir=tmp_path,
        grpc_port=_free_port(),
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}",
        redis_prefix=prefix,
        queue_prefix=queue_prefix,
        collector_schedule=False,
        live_max_age_seconds=0,
    )
    suite = await start_config(config, "services")
    demo = await start_demo(suite)
    # The Python workers, and the Node worker on the reports queue when Node and the built SDK are there.
    workers = len(demo.workers) + (demo.node_worker is not None)
    channels: list[grpc.aio.Channel] = []

    def client(role: str, subject: str) -> pb_grpc.MonitorServiceStub:
        channel = open_channel(suite.grpc_target, suite.authority.mint(subject, role))
        channels.append(channel)
        return pb_grpc.MonitorServiceStub(channel)

    viewer, operator, admin = client("viewer", "vera"), client("operator", "otto"), client("admin", "ada")
    try:
        # One suite for all phases, in this order: the audit log check expects every action before it.
        channel = open_channel(suite.grpc_target, suite.authority.mint("ops", "operator"))
        channels.append(channel)
        await _read_queues_and_jobs(viewer, col_grpc.CollectorServiceStub(channel), workers)
        await _act_on_jobs(viewer, operator)
        await _act_on_queues(operator, admin)
        await _cancel_a_running_report(viewer, admin)
        await _act_on_workers(viewer, operator, admin, workers)
        await _check_audit_log(viewer, admin)

        capsys.readouterr()
        assert await show_queues(config.core, suite.grpc_target) == 3
        assert await show_audit(config.core, suite.grpc_target, 5) == 5
        printed = capsys.readouterr().out
        assert "emails" in printed and "INCIDENT_ACKNOWLEDGE" in printed
    finally:
        for channel in channels:
            await channel.close()
        await demo.stop()
        await suite.stop()
        await delete_prefix(redis, queue_prefix)


async def _read_queues_and_jobs(
    viewer: pb_grpc.MonitorServiceStub, collector: col_grpc.CollectorServiceStub, workers: int
) -> None:
    """Overview, queues, a trend after a collection, and a page of jobs with one in full."""

    async def busy() -> bool:
        overview = await viewer.GetOverview(pb.GetOverviewRequest())
        return (
            overview.queues_total == 3
            and overview.workers_online == workers
            and overview.counts.completed > 5
        )

    await _eventually(busy, f"3 demo queues, {workers} workers online and completed jobs")
    queues = {q.name: q for q in (await viewer.ListQueues(pb.ListQueuesRequest())).queues}
    assert sorted(queues) == ["emails", "reports", "webhooks"]
    assert all(q.online_workers >= 1 for q in queues.values())
    assert (await viewer.GetQueue(pb.GetQueueRequest(queue="emails"))).queue.name == "emails"

    await collector.CollectNow(col_pb.CollectNowRequest())
    trend = await viewer.GetQueueTrend(pb.GetQueueTrendRequest(queue="emails", hours=1))
    assert any(p.has_data for p in trend.points)

    jobs = await viewer.ListJobs(pb.ListJobsRequest(queue="emails", page_size=10))
    assert jobs.jobs and jobs.total_size >= len(jobs.jobs)
    job = (await viewer.GetJob(pb.GetJobRequest(queue="emails", job_id=jobs.jobs[0].job_id))).job
    assert job.summary.job_id == jobs.jobs[0].job_id and job.data.startswith("{")


async def _act_on_jobs(viewer: pb_grpc.MonitorServiceStub, operator: pb_grpc.MonitorServiceStub) -> None:
    """Add, promote and retry jobs, one by one and in bulk."""
    added = await operator.AddJob(pb.AddJobRequest(queue="reports", name="rerun", data='{"account": 1}'))
    assert added.job.job_id
    delayed = await operator.AddJob(
        pb.AddJobRequest(queue="webhooks", name="later", delay=_seconds(600), data="{}")
    )
    await operator.PromoteJob(pb.PromoteJobRequest(queue="webhooks", job_id=delayed.job.job_id))
    await operator.PromoteDelayedJobs(pb.PromoteDelayedJobsRequest(queue="webhooks"))
    await operator.RetryFailedJobs(pb.RetryFailedJobsRequest(queue="webhooks"))

    gone = await operator.AddJob(
        pb.AddJobRequest(queue="webhooks", name="deliver", data='{"url": "https://hooks.example.com/gone"}')
    )

    async def webhook_failed() -> bool:
        job = await viewer.GetJob(pb.GetJobRequest(queue="webhooks", job_id=gone.job.job_id))
        return job.job.summary.state == pb.JOB_STATE_FAILED

    # The demo's webhook receiver for /gone always fails: one attempt, then failed for good.
    await _eventually(webhook_failed, "the /gone webhook failing")
    retried = await operator.RetryJob(pb.RetryJobRequest(queue="webhooks", job_id=gone.job.job_id))
    assert retried.previous_state == pb.JOB_STATE_FAILED


async def _act_on_queues(operator: pb_grpc.MonitorServiceStub, admin: pb_grpc.MonitorServiceStub) -> None:
    """Pause and resume a queue, clean one and drain another."""
    assert (await operator.PauseQueue(pb.PauseQueueRequest(queue="emails"))).changed
    assert (await operator.ResumeQueue(pb.ResumeQueueRequest(queue="emails"))).changed
    await admin.CleanQueue(
        pb.CleanQueueRequest(queue="emails", state=pb.JOB_STATE_COMPLETED, confirm="emails")
    )
    await admin.DrainQueue(pb.DrainQueueRequest(queue="webhooks", confirm="webhooks", include_delayed=True))


async def _cancel_a_running_report(
    viewer: pb_grpc.MonitorServiceStub, admin: pb_grpc.MonitorServiceStub
) -> None:
    """Cancel a report job while an instrumented worker holds it."""

    async def report_running() -> bool:
        page = await viewer.ListJobs(pb.ListJobsRequest(queue="reports", states=[pb.JOB_STATE_ACTIVE]))
        if not page.jobs:
            return False
        detail = await viewer.GetJob(pb.GetJobRequest(queue="reports", job_id=page.jobs[0].job_id))
        return bool(detail.job.worker_id)

    await _eventually(report_running, "a running report held by an instrumented worker")
    active = await viewer.ListJobs(pb.ListJobsRequest(queue="reports", states=[pb.JOB_STATE_ACTIVE]))
    cancelled = await admin.CancelJob(pb.CancelJobRequest(queue="reports", job_id=active.jobs[0].job_id))
    # The job may finish on its own in between; then the worker answers that it could not cancel.
    assert cancelled.outcome in (pb.CANCEL_OUTCOME_CANCELLED, pb.CANCEL_OUTCOME_REFUSED_BY_WORKER)
    assert cancelled.worker_id in ("demo-reports-1", NODE_WORKER_ID)


async def _act_on_workers(
    viewer: pb_grpc.MonitorServiceStub,
    operator: pb_grpc.MonitorServiceStub,
    admin: pb_grpc.MonitorServiceStub,
    workers: int,
) -> None:
    """List and read workers, then quiet, resume and stop them."""
    listed = await viewer.ListWorkers(pb.ListWorkersRequest())
    assert len(listed.workers) == workers
    assert (await viewer.GetWorker(pb.GetWorkerRequest(worker_id="demo-emails-1"))).worker.report.queues
    quiet = await operator.QuietWorker(pb.QuietWorkerRequest(worker_id="demo-emails-1"))
    assert quiet.command.type == hb_pb.COMMAND_TYPE_QUIET
    await operator.ResumeWorker(pb.ResumeWorkerRequest(worker_id="demo-emails-1"))
    await admin.StopWorker(pb.StopWorkerRequest(worker_id="demo-emails-2", confirm="demo-emails-2"))


async def _check_audit_log(viewer: pb_grpc.MonitorServiceStub, admin: pb_grpc.MonitorServiceStub) -> None:
    """Write an audit entry, then find it and every action taken above in the log, none left pending."""
    written = await admin.CreateAuditLog(
        pb.CreateAuditLogRequest(
            audit_log=pb.AuditLog(
                actor="otto",
                role="operator",
                action=pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE,
                entity_type="incident",
                entity_id="demo-incident",
                outcome=pb.AUDIT_OUTCOME_SUCCEEDED,
            )
        )
    )
    log = await viewer.ListAuditLogs(pb.ListAuditLogsRequest(page_size=200))
    actions = {pb.AuditAction.Name(e.action).removeprefix("AUDIT_ACTION_") for e in log.audit_logs}
    assert actions >= {
        "JOB_ADD",
        "JOB_PROMOTE",
        "JOB_RETRY",
        "JOB_CANCEL",
        "QUEUE_PROMOTE_DELAYED",
        "QUEUE_RETRY_FAILED",
        "QUEUE_PAUSE",
        "QUEUE_RESUME",
        "QUEUE_CLEAN",
        "QUEUE_DRAIN",
        "WORKER_QUIET",
        "WORKER_RESUME",
        "WORKER_STOP",
        "WORKER_ONLINE",
        "INCIDENT_ACKNOWLEDGE",
    }
    assert written.audit_log.id in {e.id for e in log.audit_logs}
    assert all(e.outcome != pb.AUDIT_OUTCOME_PENDING for e in log.audit_logs)


def _seconds(value: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(int(value * 1000))
    return duration
