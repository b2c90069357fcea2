"""MonitorService: queries through the board and the peers, actions through the audit log."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.api import httpbody_pb2  # type: ignore[import-untyped]
from google.protobuf import json_format, struct_pb2

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.common.v1 import access_pb2
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core import context, validation
from workermon_core.auth import role_allows
from workermon_core.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound
from workermon_core.pagination import bounded_page_size, decode_token, encode_token, page_size
from workermon_core.peer import Peer
from workermon_core.validation import queue_name
from workermon_queues.errors import QueueError
from workermon_queues.flows import FlowActions
from workermon_queues.jobs import JobActions, JobIsActive, SearchQuery

from . import bulk, export, public
from .audit.auditor import FAILED, PENDING, SUCCEEDED, Auditor, Done, Target
from .audit.models import AuditAction, AuditEntityType
from .audit.store import AuditStore
from .board import Board
from .bulk import BulkOperations
from .export import ExportLimits, ExportTally
from .messages import (
    CHILD_KIND_NAMES,
    DEFAULT_STATES,
    STATE_NAMES,
    child_message,
    dependencies_message,
    job_message,
    ref_message,
    scheduler_message,
    state_name,
    state_value,
    summary_message,
)

JOBS_PAGE_DEFAULT, JOBS_PAGE_MAX = 50, 100
SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX = 50, 100
SEARCH_TEXT_MAX = 200
# CreateAuditLogRequest.request_id: a UUID fits with room to spare (the column is 64 characters).
AUDIT_REQUEST_ID_MAX = 64
AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX = 50, 200
# Children and schedulers: each row costs a dozen Redis reads, so an over-wide page is refused.
CHILDREN_PAGE_DEFAULT, CHILDREN_PAGE_MAX = 50, 200
SCHEDULERS_PAGE_DEFAULT, SCHEDULERS_PAGE_MAX = 50, 200
FULL_VALUE_MAX_BYTES = 16 * 1024 * 1024
# How long an action sending a worker command waits for the worker's answer, by default and at most.
COMMAND_WAIT_DEFAULT, COMMAND_WAIT_MAX = 10.0, 60.0
CLEANABLE = {
    pb.JOB_STATE_COMPLETED: "completed",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_WAITING: "wait",
    pb.JOB_STATE_DELAYED: "delayed",
    pb.JOB_STATE_PRIORITIZED: "prioritized",
    pb.JOB_STATE_PAUSED: "paused",
}
_FINAL_COMMAND = (
    hb_pb.COMMAND_STATUS_ACKED,
    hb_pb.COMMAND_STATUS_FAILED,
    hb_pb.COMMAND_STATUS_EXPIRED,
    hb_pb.COMMAND_STATUS_UNSUPPORTED,
)


# What other services may append through CreateAuditLog, and the kind of entity each is about.
_CREATABLE: dict[int, str] = {
    pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE: AuditEntityType.INCIDENT,
    pb.AUDIT_ACTION_INCIDENT_RESOLVE: AuditEntityType.INCIDENT,
    pb.AUDIT_ACTION_LOGIN: AuditEntityType.USER,
    pb.AUDIT_ACTION_USER_ADD: AuditEntityType.USER,
    pb.AUDIT_ACTION_USER_REMOVE: AuditEntityType.USER,
    pb.AUDIT_ACTION_LOGOUT_ALL: AuditEntityType.USER,
    pb.AUDIT_ACTION_SILENCE_CREATE: AuditEntityType.SILENCE,
    pb.AUDIT_ACTION_SILENCE_EXPIRE: AuditEntityType.SILENCE,
    pb.AUDIT_ACTION_MAINTENANCE_WINDOW_CREATE: AuditEntityType.MAINTENANCE_WINDOW,
    pb.AUDIT_ACTION_MAINTENANCE_WINDOW_DELETE: AuditEntityType.MAINTENANCE_WINDOW,
    pb.AUDIT_ACTION_ALERTING_CONFIG_UPDATE: AuditEntityType.ALERTING_CONFIG,
    pb.AUDIT_ACTION_NOTIFICATION_CHANNEL_TEST: AuditEntityType.NOTIFY_CHANNEL,
}


def _audit_action(value: int) -> AuditAction:
    return AuditAction(pb.AuditAction.Name(pb.AuditAction.ValueType(value)).removeprefix("AUDIT_ACTION_"))


_COMMAND_OUTCOMES = {
    hb_pb.COMMAND_STATUS_ACKED: pb.COMMAND_OUTCOME_ACKED,
    hb_pb.COMMAND_STATUS_FAILED: pb.COMMAND_OUTCOME_REFUSED,
    hb_pb.COMMAND_STATUS_EXPIRED: pb.COMMAND_OUTCOME_REFUSED,
    hb_pb.COMMAND_STATUS_UNSUPPORTED: pb.COMMAND_OUTCOME_UNSUPPORTED,
}


def _command_outcome(
    command: hb_pb.Command,
) -> tuple[pb.CommandOutcome.ValueType, str, dict[str, Any]]:
    """What a command's status means for the caller, for its audit entry, and the entry's result:
    done (SUCCEEDED), refused by the worker or expired (FAILED), or still waiting (PENDING)."""
    outcome = _COMMAND_OUTCOMES.get(command.status, pb.COMMAND_OUTCOME_PENDING)
    audit = {
        pb.COMMAND_OUTCOME_ACKED: SUCCEEDED,
        pb.COMMAND_OUTCOME_REFUSED: FAILED,
        pb.COMMAND_OUTCOME_UNSUPPORTED: FAILED,
    }.get(outcome, PENDING)
    result = {
        "command_id": command.command_id,
        "outcome": pb.CommandOutcome.Name(outcome).removeprefix("COMMAND_OUTCOME_"),
        "worker_answer": command.result,
    }
    return outcome, audit, result


@dataclass(frozen=True)
class Sent:
    """A worker command as it stood when the wait ended, and what that means."""

    command: pb.Command
    outcome: pb.CommandOutcome.ValueType


WaitingRequest = pb.QuietWorkerRequest | pb.ResumeWorkerRequest | pb.StopWorkerRequest | pb.CancelJobRequest


def _wait_seconds(request: WaitingRequest) -> float:
    """The request's `wait` in seconds as sent, or the default when unset (checked by _check_wait)."""
    if not request.HasField("wait"):
        return COMMAND_WAIT_DEFAULT
    return validation.raw_ms(request.wait) / 1000


def _check_wait(request: WaitingRequest) -> None:
    if request.HasField("wait"):
        validation.duration(
            request.wait, "wait", minimum=timedelta(0), maximum=timedelta(seconds=COMMAND_WAIT_MAX)
        )


def _non_negative(value: int, field: str, maximum: int | None = None) -> int:
    if value < 0:
        raise InvalidArgument(field, "must not be negative")
    if maximum is not None and value > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}")
    return value


def _confirm(given: str, expected: str, what: str) -> None:
    validation.text(given, "confirm", validation.MAX_JOB_ID)
    if given != expected:
        raise InvalidArgument(
            "confirm", f"must equal the {what} ({expected!r}) to confirm this destructive action"
        )


def _checks(*steps: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        for step in steps:
            step()

    return run


class MonitorServicer(pb_grpc.MonitorServiceServicer):
    """Serves MonitorService."""

    def __init__(
        self,
        board: Board,
        jobs: JobActions,
        *,
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        collector: Peer[col_grpc.CollectorServiceStub],
        auditor: Auditor,
        audit_store: AuditStore,
        job_data_max_bytes: int = 65_536,
        bulk_max_jobs: int = 10_000,
        export_limits: ExportLimits | None = None,
        clock: Callable[[], float] = time.time,
        flows: FlowActions,
    ) -> None:
        self.board = board
        self.jobs = jobs
        self.flows = flows
        self.heartbeat = heartbeat
        self.collector = collector
        self.auditor = auditor
        self.audit_store = audit_store
        self.job_data_max_bytes = job_data_max_bytes
        self.bulk_max_jobs = bulk_max_jobs
        self.export_limits = export_limits or ExportLimits(100_000, 64 * 1024 * 1024, job_data_max_bytes)
        self.bulk = BulkOperations()
        self.clock = clock

    # -- queries ---------------------------------------------------------------------------------

    async def GetOverview(
        self, request: pb.GetOverviewRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOverviewResponse:
        """Totals across every queue and worker."""
        return (await self.board.reading()).overview

    async def ListQueues(
        self, request: pb.ListQueuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListQueuesResponse:
        """Every queue, optionally filtered by name prefix and status."""
        validation.text(request.name_prefix, "name_prefix", validation.MAX_NAME)
        validation.enum_value(request.status, pb.QueueStatus.DESCRIPTOR, "status")
        reading = await self.board.reading()
        queues = [
            q
            for q in reading.queues
            if q.name.startswith(request.name_prefix)
            and request.status in (pb.QUEUE_STATUS_UNSPECIFIED, q.status)
        ]
        return pb.ListQueuesResponse(queues=queues)

    async def GetQueue(
        self, request: pb.GetQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetQueueResponse:
        """One queue."""
        queue_name(request.queue, "queue")
        return pb.GetQueueResponse(queue=await self.board.queue_in_full(request.queue))

    async def GetQueueTrend(
        self, request: pb.GetQueueTrendRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetQueueTrendResponse:
        """A queue's history through CollectorService."""
        queue_name(request.queue, "queue")
        _non_negative(request.hours, "hours", 720)
        query = col_pb.QuerySnapshotsRequest(queue=request.queue)
        if request.HasField("step"):
            validation.duration(request.step, "step", minimum=timedelta(0))
            query.step.CopyFrom(request.step)
        for name in ("start_time", "end_time"):
            if request.HasField(name):
                validation.timestamp(getattr(request, name), name)
        if request.hours:
            end = datetime.fromtimestamp(self.clock(), tz=UTC)
            query.end_time.FromDatetime(end)
            query.start_time.FromDatetime(end - timedelta(hours=request.hours))
        else:
            if request.HasField("start_time"):
                query.start_time.CopyFrom(request.start_time)
            if request.HasField("end_time"):
                query.end_time.CopyFrom(request.end_time)
        if not await self.board.exists(request.queue):
            raise NotFound(f"queue {request.queue!r} does not exist", reason="QUEUE_NOT_FOUND")
        try:
            reply = await self.collector.stub.QuerySnapshots(query, timeout=10.0)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            # The queue exists but has no history yet: an empty trend, not an error.
            return pb.GetQueueTrendResponse(queue=request.queue, resolution="minute")
        return pb.GetQueueTrendResponse(
            queue=reply.queue,
            step=reply.step,
            points=public.trend_points(reply.points),
            resolution=reply.resolution,
        )

    # -- queue actions -----------------------------------------------------------------------------

    async def _queue_action(
        self,
        method: str,
        action: AuditAction,
        queue: str,
        parameters: dict[str, Any],
        perform: Callable[[], Any],
        *extra_checks: Callable[[], object],
    ) -> tuple[Any, int]:
        value, audit_id = await self.auditor.run(
            method,
            action,
            Target.of_queue(queue),
            parameters,
            perform,
            check=_checks(lambda: queue_name(queue, "queue"), *extra_checks),
        )
        self.board.invalidate()
        return value, audit_id

    async def PauseQueue(
        self, request: pb.PauseQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.PauseQueueResponse:
        """Pause a queue."""

        async def perform() -> Done[bool]:
            changed = await self.jobs.pause(request.queue)
            return Done(changed, {"changed": changed})

        changed, audit_id = await self._queue_action(
            "PauseQueue",
            AuditAction.QUEUE_PAUSE,
            request.queue,
            {"reason": request.reason},
            perform,
            lambda: validation.reason(request.reason),
        )
        return pb.PauseQueueResponse(changed=changed, audit_id=audit_id)

    async def ResumeQueue(
        self, request: pb.ResumeQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeQueueResponse:
        """Resume a queue."""

        async def perform() -> Done[bool]:
            changed = await self.jobs.resume(request.queue)
            return Done(changed, {"changed": changed})

        changed, audit_id = await self._queue_action(
            "ResumeQueue",
            AuditAction.QUEUE_RESUME,
            request.queue,
            {"reason": request.reason},
            perform,
            lambda: validation.reason(request.reason),
        )
        return pb.ResumeQueueResponse(changed=changed, audit_id=audit_id)

    async def RetryFailedJobs(
        self, request: pb.RetryFailedJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryFailedJobsResponse:
        """Move failed jobs back to waiting."""

        async def perform() -> Done[int]:
            retried = await self.jobs.retry_failed(request.queue, request.limit or None)
            return Done(retried, {"retried": retried})

        retried, audit_id = await self._queue_action(
            "RetryFailedJobs",
            AuditAction.QUEUE_RETRY_FAILED,
            request.queue,
            {"limit": request.limit},
            perform,
            lambda: _non_negative(request.limit, "limit"),
        )
        return pb.RetryFailedJobsResponse(retried=retried, audit_id=audit_id)

    async def PromoteDelayedJobs(
        self, request: pb.PromoteDelayedJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.PromoteDelayedJobsResponse:
        """Move delayed jobs to waiting now."""

        async def perform() -> Done[int]:
            promoted = await self.jobs.promote_delayed(request.queue, request.limit or None)
            return Done(promoted, {"promoted": promoted})

        promoted, audit_id = await self._queue_action(
            "PromoteDelayedJobs",
            AuditAction.QUEUE_PROMOTE_DELAYED,
            request.queue,
            {"limit": request.limit},
            perform,
            lambda: _non_negative(request.limit, "limit"),
        )
        return pb.PromoteDelayedJobsResponse(promoted=promoted, audit_id=audit_id)

    async def DrainQueue(
        self, request: pb.DrainQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.DrainQueueResponse:
        """Remove waiting (and optionally delayed) jobs; confirmed by the queue name."""

        async def perform() -> Done[int]:
            removed = await self.jobs.drain(request.queue, request.include_delayed)
            return Done(removed, {"removed": removed})

        removed, audit_id = await self._queue_action(
            "DrainQueue",
            AuditAction.QUEUE_DRAIN,
            request.queue,
            {"include_delayed": request.include_delayed},
            perform,
            lambda: _confirm(request.confirm, request.queue, "queue name"),
        )
        return pb.DrainQueueResponse(removed=removed, audit_id=audit_id)

    async def CleanQueue(
        self, request: pb.CleanQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.CleanQueueResponse:
        """Remove jobs of one state older than a grace period; confirmed by the queue name."""
        # As sent (the audit record shows what was asked); checked below, before anything is done.
        grace_ms = validation.raw_ms(request.grace)

        def check_state() -> None:
            if request.state not in CLEANABLE:
                raise InvalidArgument(
                    "state", "must be COMPLETED, FAILED, WAITING, DELAYED, PRIORITIZED or PAUSED"
                )

        async def perform() -> Done[list[str]]:
            removed = await self.jobs.clean(request.queue, CLEANABLE[request.state], grace_ms, request.limit)
            return Done(removed, {"removed": len(removed), "sample_job_ids": removed[:100]})

        removed, audit_id = await self._queue_action(
            "CleanQueue",
            AuditAction.QUEUE_CLEAN,
            request.queue,
            {
                "state": validation.enum_label(request.state, pb.JobState.DESCRIPTOR),
                "grace_ms": grace_ms,
                "limit": request.limit,
            },
            perform,
            check_state,
            lambda: validation.duration(request.grace, "grace", minimum=timedelta(0)),
            lambda: _non_negative(request.limit, "limit"),
            lambda: _confirm(request.confirm, request.queue, "queue name"),
        )
        return pb.CleanQueueResponse(removed=len(removed), sample_job_ids=removed[:100], audit_id=audit_id)

    # -- jobs ------------------------------------------------------------------------------------

    async def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobsResponse:
        """A page of a queue's jobs."""
        queue_name(request.queue, "queue")
        states = [state_name(s, "states") for s in request.states] or list(DEFAULT_STATES)
        size = page_size(request.page_size, JOBS_PAGE_DEFAULT, JOBS_PAGE_MAX)
        validation.job_id(request.job_id, required=False)
        validation.text(request.name_prefix, "name_prefix", validation.MAX_NAME)
        validation.text(request.failure_category, "failure_category", validation.MAX_FILTER)
        filters = (
            request.queue,
            tuple(states),
            request.job_id,
            request.name_prefix,
            request.failure_category,
        )
        cursor = decode_token(request.page_token, filters)
        page = await self.jobs.list_jobs(
            request.queue,
            states,
            size,
            cursor,
            job_id=request.job_id,
            name_prefix=request.name_prefix,
            category=request.failure_category,
        )
        return pb.ListJobsResponse(
            jobs=[summary_message(job) for job in page.jobs],
            next_page_token=encode_token(page.next_cursor, filters) if page.next_cursor else "",
            total_size=page.total,
        )

    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.GetJobResponse:
        """One job in full."""
        queue_name(request.queue, "queue")
        validation.job_id(request.job_id)
        limit = FULL_VALUE_MAX_BYTES if request.full else self.job_data_max_bytes
        job = await self.jobs.get_job(request.queue, request.job_id, limit)
        parent, dependencies = await self.flows.flow_of(request.queue, request.job_id)
        worker_id = ""
        if job.summary.state == "active":
            holder = await self._holder(request.queue, request.job_id)
            worker_id = holder.report.worker_id if holder is not None else ""
        message = job_message(request.queue, job, worker_id)
        if parent is not None:
            message.parent.CopyFrom(ref_message(parent))
        message.dependencies.CopyFrom(dependencies_message(dependencies))
        return pb.GetJobResponse(job=message)

    async def AddJob(self, request: pb.AddJobRequest, context: grpc.aio.ServicerContext) -> pb.AddJobResponse:
        """Add a job."""
        # As sent (the audit record shows what was asked); checked below, before anything is done.
        delay_ms = validation.raw_ms(request.delay)
        data = request.data or "{}"

        def check_fields() -> None:
            if not request.name or len(request.name) > validation.MAX_NAME:
                raise InvalidArgument("name", f"is required, at most {validation.MAX_NAME} characters")
            validation.duration(request.delay, "delay", minimum=timedelta(0))
            _non_negative(request.priority, "priority", 2_097_152)
            _non_negative(request.attempts, "attempts", 100)
            validation.json_document(data, "data")

        async def perform() -> Done[pb.JobSummary]:
            job = await self.jobs.add_job(
                request.queue, request.name, data, delay_ms, request.priority, request.attempts or 1
            )
            return Done(summary_message(job), {"job_id": job.id, "state": job.state})

        parameters = {
            "name": request.name,
            "data_bytes": len(data.encode()),
            "delay_ms": delay_ms,
            "priority": request.priority,
            "attempts": request.attempts or 1,
        }
        job, audit_id = await self._queue_action(
            "AddJob", AuditAction.JOB_ADD, request.queue, parameters, perform, check_fields
        )
        return pb.AddJobResponse(job=job, audit_id=audit_id)

    async def ListJobChildren(
        self, request: pb.ListJobChildrenRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobChildrenResponse:
        """A page of a job's children, with their states and own child counts."""
        queue_name(request.queue, "queue")
        validation.job_id(request.job_id)
        kinds = [] if request.kind == pb.CHILD_KIND_UNSPECIFIED else [CHILD_KIND_NAMES.get(request.kind, "")]
        if "" in kinds:
            raise InvalidArgument("kind", "must be PENDING, PROCESSED, IGNORED or FAILED")
        size = bounded_page_size(request.page_size, CHILDREN_PAGE_DEFAULT, CHILDREN_PAGE_MAX)
        filters = (request.queue, request.job_id, tuple(kinds))
        cursor = decode_token(request.page_token, filters)
        page = await self.flows.list_children(
            request.queue, request.job_id, kinds, size, cursor, validation.MAX_CHILD_VALUE_BYTES
        )
        return pb.ListJobChildrenResponse(
            children=[child_message(child) for child in page.children],
            next_page_token=encode_token(page.next_cursor, filters) if page.next_cursor else "",
            total_size=page.total,
        )

    async def RemovePendingChildren(
        self, request: pb.RemovePendingChildrenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemovePendingChildrenResponse:
        """Let a parent stuck waiting for its children move on; confirmed by the job id."""

        async def perform() -> Done[Any]:
            done = await self.flows.remove_pending_children(
                request.queue, request.job_id, validation.MAX_CHILDREN_REMOVE
            )
            result = {
                "removed": done.removed,
                "detached": done.detached,
                "still_pending": done.still_pending,
                "state": done.state or "",
            }
            return Done(done, result)

        done, audit_id = await self._job_action(
            "RemovePendingChildren",
            AuditAction.JOB_CHILDREN_REMOVE,
            queue=request.queue,
            job_id=request.job_id,
            parameters={},
            perform=perform,
            checks=(lambda: _confirm(request.confirm, request.job_id, "job id"),),
        )
        return pb.RemovePendingChildrenResponse(
            removed=done.removed,
            detached=done.detached,
            still_pending=done.still_pending,
            state=state_value(done.state),
            audit_id=audit_id,
        )

    # -- job schedulers --------------------------------------------------------------------------

    async def ListJobSchedulers(
        self, request: pb.ListJobSchedulersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJobSchedulersResponse:
        """A page of a queue's job schedulers, soonest next run first."""
        queue_name(request.queue, "queue")
        size = bounded_page_size(request.page_size, SCHEDULERS_PAGE_DEFAULT, SCHEDULERS_PAGE_MAX)
        filters = (request.queue,)
        cursor = decode_token(request.page_token, filters)
        page = await self.flows.list_schedulers(request.queue, size, cursor, validation.MAX_TEMPLATE_BYTES)
        return pb.ListJobSchedulersResponse(
            job_schedulers=[scheduler_message(s) for s in page.schedulers],
            next_page_token=encode_token(page.next_cursor, filters) if page.next_cursor else "",
            total_size=page.total,
        )

    async def _scheduler_action(
        self,
        method: str,
        action: AuditAction,
        request: pb.RunJobSchedulerRequest | pb.RemoveJobSchedulerRequest,
        perform: Callable[[], Any],
        *extra_checks: Callable[[], object],
    ) -> tuple[Any, int]:
        check = _checks(
            lambda: queue_name(request.queue, "queue"),
            lambda: validation.text(
                request.scheduler_id, "scheduler_id", validation.MAX_JOB_ID, required=True
            ),
            *extra_checks,
        )
        target = Target.of_scheduler(request.queue, request.scheduler_id)
        value, audit_id = await self.auditor.run(method, action, target, {}, perform, check=check)
        self.board.invalidate()
        return value, audit_id

    async def RunJobScheduler(
        self, request: pb.RunJobSchedulerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RunJobSchedulerResponse:
        """Add one job now from a job scheduler's template."""

        async def perform() -> Done[pb.JobSummary]:
            job = await self.flows.run_scheduler(request.queue, request.scheduler_id)
            return Done(summary_message(job), {"job_id": job.id})

        job, audit_id = await self._scheduler_action(
            "RunJobScheduler", AuditAction.JOB_SCHEDULER_RUN, request, perform
        )
        return pb.RunJobSchedulerResponse(job=job, audit_id=audit_id)

    async def RemoveJobScheduler(
        self, request: pb.RemoveJobSchedulerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveJobSchedulerResponse:
        """Remove a job scheduler and its next job; confirmed by the scheduler id."""

        async def perform() -> Done[None]:
            await self.flows.remove_scheduler(request.queue, request.scheduler_id)
            return Done(None, {"removed": True})

        _, audit_id = await self._scheduler_action(
            "RemoveJobScheduler",
            AuditAction.JOB_SCHEDULER_REMOVE,
            request,
            perform,
            lambda: _confirm(request.confirm, request.scheduler_id, "scheduler id"),
        )
        return pb.RemoveJobSchedulerResponse(audit_id=audit_id)

    async def _job_action(
        self,
        method: str,
        action: AuditAction,
        *,
        queue: str,
        job_id: str,
        parameters: dict[str, Any],
        perform: Callable[[], Any],
        checks: tuple[Callable[[], object], ...] = (),
    ) -> tuple[Any, int]:
        check = _checks(lambda: queue_name(queue, "queue"), lambda: validation.job_id(job_id), *checks)
        value, audit_id = await self.auditor.run(
            method, action, Target.of_job(queue, job_id), parameters, perform, check=check
        )
        self.board.invalidate()
        return value, audit_id

    async def RetryJob(
        self, request: pb.RetryJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryJobResponse:
        """Move a failed or completed job back to waiting."""

        async def perform() -> Done[str]:
            previous = await self.jobs.retry_job(request.queue, request.job_id)
            return Done(previous, {"previous_state": previous})

        previous, audit_id = await self._job_action(
            "RetryJob",
            AuditAction.JOB_RETRY,
            queue=request.queue,
            job_id=request.job_id,
            parameters={},
            perform=perform,
        )
        return pb.RetryJobResponse(previous_state=state_value(previous), audit_id=audit_id)

    async def PromoteJob(
        self, request: pb.PromoteJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.PromoteJobResponse:
        """Run a delayed job now."""

        async def perform() -> Done[str]:
            previous = await self.jobs.promote_job(request.queue, request.job_id)
            return Done(previous, {"previous_state": previous})

        _, audit_id = await self._job_action(
            "PromoteJob",
            AuditAction.JOB_PROMOTE,
            queue=request.queue,
            job_id=request.job_id,
            parameters={},
            perform=perform,
        )
        return pb.PromoteJobResponse(audit_id=audit_id)

    async def CancelJob(
        self, request: pb.CancelJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelJobResponse:
        """Remove a job not yet running; stop a running one through its instrumented worker."""
        # As sent (the audit record shows what was asked); checked below, before anything is done.
        wait = _wait_seconds(request)

        async def perform() -> Done[pb.CancelJobResponse]:
            state = await self.jobs.job_state(request.queue, request.job_id)
            if state != "active":
                try:
                    previous = await self.jobs.remove_job(request.queue, request.job_id)
                except JobIsActive:
                    pass  # It started in between: cancel it through its worker below.
                else:
                    reply = pb.CancelJobResponse(
                        outcome=pb.CANCEL_OUTCOME_REMOVED, previous_state=state_value(previous)
                    )
                    return Done(reply, {"outcome": "REMOVED", "previous_state": previous})
            return await self._cancel_running(request.queue, request.job_id, request.reason, wait)

        def check_wait() -> None:
            _check_wait(request)

        reply, audit_id = await self.auditor.run(
            "CancelJob",
            AuditAction.JOB_CANCEL,
            Target.of_job(request.queue, request.job_id),
            {"reason": request.reason, "wait_s": wait},
            perform,
            check=_checks(
                lambda: queue_name(request.queue, "queue"),
                lambda: validation.job_id(request.job_id),
                lambda: validation.reason(request.reason),
                check_wait,
            ),
        )
        self.board.invalidate()
        reply.audit_id = audit_id
        return reply

    async def _answer(self, command: hb_pb.Command, wait: float, poll: float = 0.1) -> hb_pb.Command:
        """The command once its worker has answered (or it expired), or as it stands after `wait` s."""
        deadline = time.monotonic() + wait
        while command.status not in _FINAL_COMMAND and time.monotonic() < deadline:
            await asyncio.sleep(min(poll, max(0.0, deadline - time.monotonic())))
            command = (
                await self.heartbeat.stub.GetCommand(
                    hb_pb.GetCommandRequest(command_id=command.command_id), timeout=5.0
                )
            ).command
        return command

    async def _holder(self, queue: str, job_id: str) -> hb_pb.Worker | None:
        """The online instrumented worker that reports running `job_id` of `queue`, if any."""
        token = ""
        while True:
            page = await self.heartbeat.stub.ListWorkers(
                hb_pb.ListWorkersRequest(
                    queue=queue, status=hb_pb.WORKER_STATUS_ONLINE, page_size=500, page_token=token
                ),
                timeout=5.0,
            )
            for worker in page.workers:
                if job_id in worker.report.active_job_ids:
                    found: hb_pb.Worker = worker
                    return found
            token = page.next_page_token
            if not token:
                return None

    async def _cancel_running(
        self, queue: str, job_id: str, reason: str, wait: float
    ) -> Done[pb.CancelJobResponse]:
        holder = await self._holder(queue, job_id)
        if holder is None:
            detail = await self.jobs.get_job(queue, job_id, 0)
            by = f" (BullMQ says worker {detail.processed_by!r} took it)" if detail.processed_by else ""
            raise FailedPrecondition(
                f"job {job_id} is running{by}, but no online worker instrumented with the Worker Monitor SDK "
                "reports holding it; only such a worker can stop a running job",
                reason="NO_INSTRUMENTED_WORKER",
            )
        worker_id = holder.report.worker_id
        sent = await self.heartbeat.stub.SendCommand(
            hb_pb.SendCommandRequest(
                worker_id=worker_id, type=hb_pb.COMMAND_TYPE_CANCEL_JOB, job_id=job_id, reason=reason
            ),
            timeout=5.0,
        )
        command = await self._answer(sent.command, wait)
        outcome = {
            hb_pb.COMMAND_STATUS_ACKED: pb.CANCEL_OUTCOME_CANCELLED,
            hb_pb.COMMAND_STATUS_FAILED: pb.CANCEL_OUTCOME_REFUSED_BY_WORKER,
            hb_pb.COMMAND_STATUS_EXPIRED: pb.CANCEL_OUTCOME_REFUSED_BY_WORKER,
            hb_pb.COMMAND_STATUS_UNSUPPORTED: pb.CANCEL_OUTCOME_UNSUPPORTED,
        }.get(command.status, pb.CANCEL_OUTCOME_PENDING)
        reply = pb.CancelJobResponse(
            outcome=outcome,
            previous_state=pb.JOB_STATE_ACTIVE,
            worker_id=worker_id,
            command=public.command(command),
        )
        result = {
            "outcome": pb.CancelOutcome.Name(outcome).removeprefix("CANCEL_OUTCOME_"),
            "worker_id": worker_id,
            "command_id": command.command_id,
            "worker_answer": command.result,
        }
        failed = outcome in (pb.CANCEL_OUTCOME_REFUSED_BY_WORKER, pb.CANCEL_OUTCOME_UNSUPPORTED)
        return Done(reply, result, FAILED if failed else SUCCEEDED)

    # -- workers ---------------------------------------------------------------------------------

    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkersResponse:
        """Workers, instrumented and uninstrumented, from HeartbeatService."""
        validation.enum_value(request.status, pb.WorkerStatus.DESCRIPTOR, "status")
        validation.enum_value(request.kind, pb.WorkerKind.DESCRIPTOR, "kind")
        validation.optional_queue_name(request.queue, "queue")
        validation.text(request.hostname, "hostname", validation.MAX_HOSTNAME)
        validation.page_token(request.page_token)
        reply = await self.heartbeat.stub.ListWorkers(
            hb_pb.ListWorkersRequest(
                page_size=request.page_size,
                page_token=request.page_token,
                status=public.worker_status(request.status),
                queue=request.queue,
                hostname=request.hostname,
                search=request.search,
                kind=public.worker_kind(request.kind),
            ),
            timeout=10.0,
        )
        return pb.ListWorkersResponse(
            workers=[public.worker(w) for w in reply.workers],
            next_page_token=reply.next_page_token,
            connection_scan=public.connection_scan(reply.connection_scan),
        )

    async def GetWorker(
        self, request: pb.GetWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerResponse:
        """One worker, from HeartbeatService."""
        validation.worker_id(request.worker_id)
        reply = await self.heartbeat.stub.GetWorker(
            hb_pb.GetWorkerRequest(worker_id=request.worker_id), timeout=5.0
        )
        return pb.GetWorkerResponse(worker=public.worker(reply.worker))

    async def GetWorkerHistory(
        self, request: pb.GetWorkerHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerHistoryResponse:
        """A worker's last 24 hours at minute resolution, from HeartbeatService."""
        forward = hb_pb.GetWorkerHistoryRequest(worker_id=request.worker_id)
        if request.HasField("start_time"):
            forward.start_time.CopyFrom(request.start_time)
        if request.HasField("end_time"):
            forward.end_time.CopyFrom(request.end_time)
        reply = await self.heartbeat.stub.GetWorkerHistory(forward, timeout=10.0)
        return pb.GetWorkerHistoryResponse(
            worker_id=reply.worker_id, points=public.history_points(reply.points), step=reply.step
        )

    async def _command(
        self,
        method: str,
        action: AuditAction,
        kind: hb_pb.CommandType.ValueType,
        request: pb.QuietWorkerRequest | pb.ResumeWorkerRequest | pb.StopWorkerRequest,
        *extra_checks: Callable[[], object],
    ) -> tuple[Sent, int]:
        """Send a command under the audit log and wait (bounded) for the worker's answer."""
        worker_id, reason, wait = request.worker_id, request.reason, _wait_seconds(request)
        check = _checks(
            lambda: validation.worker_id(worker_id),
            lambda: validation.reason(reason),
            lambda: _check_wait(request),
            *extra_checks,
        )

        async def perform() -> Done[Sent]:
            # The worker must exist: a command for a mistyped id would wait for nobody.
            await self.heartbeat.stub.GetWorker(hb_pb.GetWorkerRequest(worker_id=worker_id), timeout=5.0)
            sent = await self.heartbeat.stub.SendCommand(
                hb_pb.SendCommandRequest(worker_id=worker_id, type=kind, reason=reason), timeout=5.0
            )
            command = await self._answer(sent.command, wait)
            outcome, audit, result = _command_outcome(command)

            async def settle() -> tuple[str, dict[str, Any]]:
                # Until the command expires at the latest; the entry then says how the worker answered.
                expires = command.expire_time.seconds + command.expire_time.nanos / 1e9
                final = await self._answer(command, max(0.0, expires - time.time()) + 1.0, poll=1.0)
                return _command_outcome(final)[1:]

            return Done(Sent(public.command(command), outcome), result, audit, settle)

        return await self.auditor.run(
            method, action, Target.of_worker(worker_id), {"reason": reason}, perform, check=check
        )

    async def QuietWorker(
        self, request: pb.QuietWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuietWorkerResponse:
        """Send QUIET to a worker."""
        sent, audit_id = await self._command(
            "QuietWorker",
            AuditAction.WORKER_QUIET,
            hb_pb.COMMAND_TYPE_QUIET,
            request,
        )
        return pb.QuietWorkerResponse(command=sent.command, outcome=sent.outcome, audit_id=audit_id)

    async def ResumeWorker(
        self, request: pb.ResumeWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResumeWorkerResponse:
        """Send RESUME to a worker."""
        sent, audit_id = await self._command(
            "ResumeWorker",
            AuditAction.WORKER_RESUME,
            hb_pb.COMMAND_TYPE_RESUME,
            request,
        )
        return pb.ResumeWorkerResponse(command=sent.command, outcome=sent.outcome, audit_id=audit_id)

    async def StopWorker(
        self, request: pb.StopWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.StopWorkerResponse:
        """Send STOP to a worker; confirmed by its id."""
        sent, audit_id = await self._command(
            "StopWorker",
            AuditAction.WORKER_STOP,
            hb_pb.COMMAND_TYPE_STOP,
            request,
            lambda: _confirm(request.confirm, request.worker_id, "worker id"),
        )
        return pb.StopWorkerResponse(command=sent.command, outcome=sent.outcome, audit_id=audit_id)

    # -- audit log -------------------------------------------------------------------------------

    async def ListAuditLogs(
        self, request: pb.ListAuditLogsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAuditLogsResponse:
        """Audit entries, newest first."""
        size = page_size(request.page_size, AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX)
        validation.text(request.actor, "actor", validation.MAX_FILTER)
        validation.text(request.entity_type, "entity_type", validation.MAX_FILTER)
        # A job's entity id is "queue/job id": as long as the log keeps one.
        validation.text(request.entity_id, "entity_id", validation.MAX_AUDIT_VALUE_CHARS)
        validation.optional_queue_name(request.queue, "queue")
        validation.enum_value(request.action, pb.AuditAction.DESCRIPTOR, "action")
        validation.enum_value(request.outcome, pb.AuditOutcome.DESCRIPTOR, "outcome")
        start = (
            validation.timestamp(request.start_time, "start_time") if request.HasField("start_time") else None
        )
        end = validation.timestamp(request.end_time, "end_time") if request.HasField("end_time") else None
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time", "must be after start_time")
        action = str(_audit_action(request.action)) if request.action else ""
        outcome = (
            pb.AuditOutcome.Name(request.outcome).removeprefix("AUDIT_OUTCOME_") if request.outcome else ""
        )
        filters = (
            request.actor,
            action,
            request.entity_type,
            request.entity_id,
            request.queue,
            outcome,
            start.isoformat() if start else "",
            end.isoformat() if end else "",
        )
        cursor = decode_token(request.page_token, filters)
        after = None
        if cursor is not None:
            moment, _, ident = cursor.partition("|")
            try:
                after = (datetime.fromisoformat(moment), int(ident))
            except ValueError:
                raise InvalidArgument("page_token", "is not a token this service issued") from None
        rows, next_after = await self.audit_store.list(
            actor=request.actor,
            action=action,
            entity_type=request.entity_type,
            entity_id=request.entity_id,
            queue=request.queue,
            outcome=outcome,
            start=start,
            end=end,
            page_size=size,
            after=after,
        )
        reply = pb.ListAuditLogsResponse(audit_logs=[audit_message(row) for row in rows])
        if next_after is not None:
            reply.next_page_token = encode_token(f"{next_after[0].isoformat()}|{next_after[1]}", filters)
        return reply

    async def CreateAuditLog(
        self, request: pb.CreateAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateAuditLogResponse:
        """Append an entry another service writes for its caller: incident acknowledge and resolve, login
        and user changes from the gateway and the CLI, and any attempt at an audited action that a service
        refused (outcome DENIED, about the entity it names)."""
        entry = request.audit_log
        entity_type = _CREATABLE.get(entry.action)
        denied = entry.outcome == pb.AUDIT_OUTCOME_DENIED and entry.action != pb.AUDIT_ACTION_UNSPECIFIED
        # A refusal names what the request named, which may be less than the action acts on (a
        # refused CreateSilence has no silence yet: entity "rpc"); an action written here otherwise keeps
        # its own entity type.
        known = entry.entity_type in set(AuditEntityType)
        if denied and known and (entity_type is None or entry.entity_type == AuditEntityType.RPC):
            entity_type = AuditEntityType(entry.entity_type)
        if entity_type is None:
            raise InvalidArgument(
                "audit_log.action",
                "only INCIDENT_ACKNOWLEDGE, INCIDENT_RESOLVE, LOGIN, USER_ADD, USER_REMOVE, "
                "LOGOUT_ALL, SILENCE_CREATE, SILENCE_EXPIRE, MAINTENANCE_WINDOW_CREATE, "
                "MAINTENANCE_WINDOW_DELETE, ALERTING_CONFIG_UPDATE and NOTIFICATION_CHANNEL_TEST, "
                "or a refused attempt (outcome DENIED) at any audited action "
                "naming a known entity_type, are written here",
            )
        if entry.entity_type and entry.entity_type != entity_type:
            raise InvalidArgument("audit_log.entity_type", f"must be {entity_type!r} for this action")
        if not entry.entity_id:
            raise InvalidArgument("audit_log.entity_id", f"is required (the {entity_type})")
        # role and entity_type are columns of 16 characters; the other texts are cut by the auditor.
        validation.text(entry.role, "audit_log.role", 16)
        validation.text(entry.entity_type, "audit_log.entity_type", 16)
        validation.text(entry.entity_id, "audit_log.entity_id", validation.MAX_FILTER)
        validation.optional_queue_name(entry.queue, "audit_log.queue")
        validation.enum_value(
            entry.outcome, pb.AuditOutcome.DESCRIPTOR, "audit_log.outcome", unspecified=False
        )
        validation.text(request.request_id, "request_id", AUDIT_REQUEST_ID_MAX, control=False)
        audit_id = await self.auditor.record_for(
            actor=entry.actor,
            role=entry.role,
            action=_audit_action(entry.action),
            target=Target(entity_type, entry.entity_id, entry.queue or None),
            parameters=json_format.MessageToDict(entry.parameters),
            outcome=pb.AuditOutcome.Name(entry.outcome).removeprefix("AUDIT_OUTCOME_"),
            result=json_format.MessageToDict(entry.result),
            request_id=entry.request_id,
            idempotency_key=request.request_id or None,
        )
        written = await self.audit_store.get(audit_id)
        if written is None:
            raise NotFound(f"audit entry {audit_id} vanished after it was written", reason="AUDIT_LOST")
        return pb.CreateAuditLogResponse(audit_log=audit_message(written))

    # -- search, bulk actions, export, obliterate ---------------------------------------------------

    async def SearchJobs(
        self, request: pb.SearchJobsRequest, context: grpc.aio.ServicerContext
    ) -> pb.SearchJobsResponse:
        """A job id in every queue, or one bounded step of a scan by name prefix and text."""
        queues = validation.queue_names(request.queues, "queues")
        states = [state_name(s, "states") for s in request.states]
        size = page_size(request.page_size, SEARCH_PAGE_DEFAULT, SEARCH_PAGE_MAX)
        validation.job_id(request.job_id, required=False)
        validation.text(request.name_prefix, "name_prefix", validation.MAX_NAME)
        validation.text(request.text, "text", SEARCH_TEXT_MAX)
        validation.page_token(request.page_token)
        if not (queues or request.job_id or request.text or request.name_prefix):
            raise InvalidArgument(
                "text",
                "is required when no queues, job_id or name_prefix narrow the search "
                "(a search of every job of every queue is refused)",
            )
        filters = (tuple(queues), tuple(states), request.job_id, request.name_prefix, request.text)
        cursor = decode_token(request.page_token, filters)
        targets = queues or sorted(q.name for q in (await self.board.reading()).queues)
        if request.job_id:
            page = await self.jobs.search_by_id(targets, states, request.job_id)
        else:
            page = await self.jobs.search_scan(
                SearchQuery(
                    targets,
                    states or list(DEFAULT_STATES),
                    request.name_prefix,
                    request.text,
                    size,
                    cursor,
                    strict=bool(queues),
                )
            )
        return pb.SearchJobsResponse(
            hits=[pb.JobHit(queue=h.queue, job=summary_message(h.job), matched=h.matched) for h in page.hits],
            next_page_token=encode_token(page.next_cursor, filters) if page.next_cursor else "",
            scanned=page.scanned,
            total=page.total,
        )

    async def StartBulkJobAction(
        self, request: pb.StartBulkJobActionRequest, context: grpc.aio.ServicerContext
    ) -> pb.StartBulkJobActionResponse:
        """Select the jobs, refuse past the configured maximum, then act on them in the background."""
        required = access_pb2.ROLE_ADMIN if request.action == pb.BULK_JOB_ACTION_REMOVE else None
        # Known states by name; an unknown one is refused (and audited) by check_fields below.
        states = [STATE_NAMES[s] for s in request.states if s in STATE_NAMES]

        def check_fields() -> None:
            for value in request.states:
                state_name(value, "states")
            validation.enum_value(request.action, pb.BulkJobAction.DESCRIPTOR, "action", unspecified=False)
            validation.reason(request.reason)
            validation.text(request.name_prefix, "name_prefix", validation.MAX_NAME)
            validation.text(request.failure_category, "failure_category", validation.MAX_FILTER)
            if request.all_matching == bool(request.job_ids):
                raise InvalidArgument(
                    "job_ids", "list the jobs, or set all_matching for every job matching the filter"
                )
            if len(request.job_ids) > self.bulk_max_jobs:
                raise bulk.over_limit(len(request.job_ids), self.bulk_max_jobs)
            for i, job_id in enumerate(request.job_ids):
                validation.job_id(job_id, f"job_ids[{i}]")

        selected: list[str] = []
        refusal: Exception | None = None
        who = context_principal()
        if who is not None and role_allows(who.role, required or self.auditor.roles["StartBulkJobAction"]):
            # Only for a caller allowed to act: the selection itself reads up to the limit of jobs.
            try:
                queue_name(request.queue, "queue")
                check_fields()
                if request.all_matching:
                    selected = await bulk.matching_ids(
                        self.jobs,
                        request.queue,
                        states or list(DEFAULT_STATES),
                        request.name_prefix,
                        request.failure_category,
                        self.bulk_max_jobs,
                    )
                    if len(selected) > self.bulk_max_jobs:
                        raise bulk.over_limit(len(selected), self.bulk_max_jobs)
                else:
                    selected = list(dict.fromkeys(request.job_ids))
            except (DomainError, QueueError) as exc:
                refusal = exc

        def check() -> None:
            if refusal is not None:
                raise refusal
            queue_name(request.queue, "queue")
            check_fields()

        async def perform() -> Done[pb.BulkOperation]:
            operation = self.bulk.new(request.queue, request.action, len(selected))
            runner = asyncio.ensure_future(
                bulk.run(self.jobs, operation, selected, on_batch=self.board.invalidate)
            )
            self.bulk.start(runner)

            async def settle() -> tuple[str, dict[str, Any]]:
                await asyncio.shield(runner)
                return bulk.outcome(operation)

            return Done(operation, {"operation_id": operation.operation_id}, PENDING, settle)

        parameters: dict[str, Any] = {
            "action": bulk.ACTION_NAMES.get(request.action, str(request.action)),
            "reason": request.reason,
            "selected": len(selected),
        }
        if request.all_matching:
            parameters["filter"] = {
                "states": states,
                "name_prefix": request.name_prefix,
                "failure_category": request.failure_category,
            }
        else:
            parameters["job_ids"] = list(request.job_ids[:20])
        operation, audit_id = await self.auditor.run(
            "StartBulkJobAction",
            AuditAction.JOB_BULK_ACTION,
            Target.of_queue(request.queue),
            parameters,
            perform,
            check=check,
            required=required,
        )
        operation.audit_id = audit_id
        return pb.StartBulkJobActionResponse(operation=operation)

    async def GetBulkOperation(
        self, request: pb.GetBulkOperationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBulkOperationResponse:
        """A bulk action's progress and counts."""
        validation.text(request.operation_id, "operation_id", 64, required=True)
        operation = self.bulk.get(request.operation_id)
        if operation is None:
            raise NotFound(
                f"bulk operation {request.operation_id!r} is unknown (or old enough to be forgotten)",
                reason="OPERATION_NOT_FOUND",
            )
        return pb.GetBulkOperationResponse(operation=operation)

    async def ObliterateQueue(
        self, request: pb.ObliterateQueueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ObliterateQueueResponse:
        """Destroy a queue with BullMQ's obliterate, in batches; confirmed by the queue name."""

        async def perform() -> Done[int]:
            batches = await self.jobs.obliterate(request.queue, request.force)
            return Done(batches, {"batches": batches})

        batches, audit_id = await self._queue_action(
            "ObliterateQueue",
            AuditAction.QUEUE_OBLITERATE,
            request.queue,
            {"force": request.force},
            perform,
            lambda: _confirm(request.confirm, request.queue, "queue name"),
        )
        return pb.ObliterateQueueResponse(batches=batches, audit_id=audit_id)

    async def ExportJobs(
        self, request: pb.ExportJobsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportJobsResponse]:
        """The jobs matching a filter as JSON lines or CSV; with their data only for an admin, audited."""
        queue_name(request.queue, "queue")
        states = [state_name(s, "states") for s in request.states] or list(DEFAULT_STATES)
        validation.text(request.name_prefix, "name_prefix", validation.MAX_NAME)
        validation.text(request.failure_category, "failure_category", validation.MAX_FILTER)
        validation.enum_value(request.format, pb.ExportFormat.DESCRIPTOR, "format")
        fmt = "csv" if request.format == pb.EXPORT_FORMAT_CSV else "jsonl"
        audit_id = 0
        if request.include_data:

            async def perform() -> Done[None]:
                return Done(None, {}, PENDING)  # completed below, once the stream has ended

            parameters = {
                "states": states,
                "name_prefix": request.name_prefix,
                "failure_category": request.failure_category,
                "format": fmt,
            }
            _, audit_id = await self.auditor.run(
                "ExportJobs",
                AuditAction.JOB_EXPORT,
                Target.of_queue(request.queue),
                parameters,
                perform,
                required=access_pb2.ROLE_ADMIN,
            )
        tally = ExportTally()
        sent = False
        try:
            async for chunk in export.chunks(
                self.jobs,
                request.queue,
                states,
                request.name_prefix,
                request.failure_category,
                fmt,
                request.include_data,
                self.export_limits,
                tally,
            ):
                sent = True
                yield _chunk(export.CONTENT_TYPES[fmt], chunk)
            if not sent:
                # Nothing matched: still one (empty) chunk, so the HTTP answer names its content type.
                yield _chunk(export.CONTENT_TYPES[fmt], b"")
        except BaseException as exc:
            if audit_id:
                await self.auditor.finish(
                    audit_id, FAILED, {"error": str(exc) or type(exc).__name__, "jobs": tally.jobs}
                )
            raise
        if audit_id:
            await self.auditor.finish(
                audit_id, SUCCEEDED, {"jobs": tally.jobs, "bytes": tally.bytes, "stopped": tally.stopped}
            )

    async def ReleaseDeduplicationId(
        self, request: pb.ReleaseDeduplicationIdRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseDeduplicationIdResponse:
        """Free the deduplication id a job holds."""

        async def perform() -> Done[str]:
            released = await self.jobs.release_deduplication(request.queue, request.job_id)
            return Done(released, {"deduplication_id": released})

        released, audit_id = await self._job_action(
            "ReleaseDeduplicationId",
            AuditAction.DEDUPLICATION_RELEASE,
            queue=request.queue,
            job_id=request.job_id,
            parameters={},
            perform=perform,
        )
        return pb.ReleaseDeduplicationIdResponse(deduplication_id=released, audit_id=audit_id)

    async def GetDeduplicatedJob(
        self, request: pb.GetDeduplicatedJobRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDeduplicatedJobResponse:
        """The job holding a deduplication id."""
        queue_name(request.queue, "queue")
        validation.text(
            request.deduplication_id, "deduplication_id", validation.MAX_DEDUPLICATION_ID, required=True
        )
        job, expires_in = await self.jobs.deduplicated_job(request.queue, request.deduplication_id)
        reply = pb.GetDeduplicatedJobResponse(job=summary_message(job))
        if expires_in is not None:
            reply.expires_in_ms = expires_in
        return reply


def _chunk(content_type: str, data: bytes) -> pb.ExportJobsResponse:
    return pb.ExportJobsResponse(body=httpbody_pb2.HttpBody(content_type=content_type, data=data))


def context_principal() -> Any:
    """The caller's principal, as the interceptor set it."""
    return context.principal.get()


def audit_message(row: Any) -> pb.AuditLog:
    """A stored audit row as an AuditLog message."""
    message = pb.AuditLog(
        id=row.id,
        actor=row.actor,
        role=row.role,
        action=pb.AuditAction.Value("AUDIT_ACTION_" + row.action),
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        queue=row.queue or "",
        outcome=pb.AuditOutcome.Value("AUDIT_OUTCOME_" + row.outcome),
        request_id=row.request_id or "",
    )
    message.time.FromDatetime(row.time)
    _fill_struct(message.parameters, row.parameters)
    _fill_struct(message.result, row.result)
    return message


def _fill_struct(target: struct_pb2.Struct, text: str | None) -> None:
    if not text:
        return
    value = json.loads(text)
    if isinstance(value, dict):
        target.update(value)
