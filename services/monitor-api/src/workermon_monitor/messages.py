"""Job shapes of the queue backend as MonitorService messages, and job states both ways."""

from __future__ import annotations

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.errors import InvalidArgument
from workermon_core.protos import set_time
from workermon_queues.flows import CHILD_KINDS, DependencyCounts, JobChild, JobRef, JobScheduler
from workermon_queues.jobs import JobDetail, JobSummary

STATE_NAMES: dict[pb.JobState.ValueType, str] = {
    pb.JOB_STATE_WAITING: "waiting",
    pb.JOB_STATE_ACTIVE: "active",
    pb.JOB_STATE_DELAYED: "delayed",
    pb.JOB_STATE_PRIORITIZED: "prioritized",
    pb.JOB_STATE_WAITING_CHILDREN: "waiting_children",
    pb.JOB_STATE_COMPLETED: "completed",
    pb.JOB_STATE_FAILED: "failed",
    pb.JOB_STATE_PAUSED: "paused",
}
STATE_VALUES = {name: value for value, name in STATE_NAMES.items()}
# What an operator looks at first: what runs, what waits, then what is done.
DEFAULT_STATES = (
    "active",
    "waiting",
    "prioritized",
    "delayed",
    "waiting_children",
    "failed",
    "completed",
    "paused",
)


def state_name(value: int, field: str) -> str:
    """The backend's name of a JobState; INVALID_ARGUMENT naming `field` for UNSPECIFIED or unknown."""
    name = STATE_NAMES.get(pb.JobState.ValueType(value))
    if name is None:
        raise InvalidArgument(field, f"must be a job state ({', '.join(n.upper() for n in STATE_VALUES)})")
    return name


def state_value(name: str | None) -> pb.JobState.ValueType:
    """The JobState of a backend state name (UNSPECIFIED for None or unknown)."""
    return STATE_VALUES.get(name or "", pb.JOB_STATE_UNSPECIFIED)


def summary_message(job: JobSummary) -> pb.JobSummary:
    """A backend summary as a JobSummary message."""
    message = pb.JobSummary(
        job_id=job.id,
        name=job.name,
        state=state_value(job.state),
        attempts_made=job.attempts_made,
        max_attempts=job.max_attempts,
        failed_reason=job.failed_reason,
        failure_category=job.failure_category,
        delay_ms=job.delay_ms,
        priority=job.priority,
        deduplication_id=job.deduplication_id,
        stalled_count=job.stalled_count,
        stalled_suspected=job.stalled_suspected,
    )
    set_time(message.create_time, job.created_ms)
    set_time(message.process_time, job.processed_ms)
    set_time(message.finish_time, job.finished_ms)
    if job.duration_ms is not None:
        message.duration_ms = job.duration_ms
    return message


def job_message(queue: str, job: JobDetail, worker_id: str = "") -> pb.Job:
    """A backend job in full as a Job message."""
    message = pb.Job(
        summary=summary_message(job.summary),
        queue=queue,
        data=job.data,
        data_truncated=job.data_truncated,
        data_bytes=job.data_bytes,
        return_value=job.return_value,
        return_value_truncated=job.return_value_truncated,
        return_value_bytes=job.return_value_bytes,
        options=job.options_json,
        progress=job.progress_json,
        stacktrace=job.stacktrace,
        logs=job.logs,
        logs_total=job.logs_total,
        processed_by=job.processed_by,
        worker_id=worker_id,
        failed_reason=job.failed_reason_full,
        parent_key=job.parent_key,
    )
    for step in job.timeline:
        entry = message.timeline.add(kind=step.kind, detail=step.detail)
        set_time(entry.time, step.time_ms)
    return message


CHILD_KIND_NAMES: dict[pb.ChildKind.ValueType, str] = {
    pb.CHILD_KIND_PENDING: "pending",
    pb.CHILD_KIND_PROCESSED: "processed",
    pb.CHILD_KIND_IGNORED: "ignored",
    pb.CHILD_KIND_FAILED: "failed",
}
CHILD_KIND_VALUES = {name: value for value, name in CHILD_KIND_NAMES.items()}
assert tuple(CHILD_KIND_VALUES) == CHILD_KINDS


def ref_message(ref: JobRef) -> pb.JobRef:
    """A job named across queues as a JobRef message."""
    return pb.JobRef(queue=ref.queue, job_id=ref.job_id, key=ref.key)


def dependencies_message(counts: DependencyCounts) -> pb.DependencyCounts:
    """A parent's children per kind as a DependencyCounts message."""
    return pb.DependencyCounts(
        pending=counts.pending, processed=counts.processed, ignored=counts.ignored, failed=counts.failed
    )


def child_message(child: JobChild) -> pb.JobChild:
    """One child of a parent as a JobChild message."""
    return pb.JobChild(
        job=ref_message(child.ref),
        kind=CHILD_KIND_VALUES[child.kind],
        state=state_value(child.state),
        name=child.name,
        exists=child.exists,
        value=child.value,
        value_truncated=child.value_truncated,
        failed_reason=child.failed_reason,
        dependencies=dependencies_message(child.children),
    )


def scheduler_message(scheduler: JobScheduler) -> pb.JobScheduler:
    """A job scheduler as a JobScheduler message (unset numbers stay absent)."""
    message = pb.JobScheduler(
        scheduler_id=scheduler.id,
        name=scheduler.name,
        pattern=scheduler.pattern,
        tz=scheduler.tz,
        template_data=scheduler.template_data,
        template_data_truncated=scheduler.template_data_truncated,
        template_options=scheduler.template_options,
        legacy=scheduler.legacy,
    )
    optional = {
        "every_ms": scheduler.every_ms,
        "iteration_count": scheduler.iteration_count,
        "limit": scheduler.limit,
        "offset_ms": scheduler.offset_ms,
    }
    for name, value in optional.items():
        if value is not None:
            setattr(message, name, value)
    set_time(message.next_run_time, scheduler.next_run_ms)
    set_time(message.start_time, scheduler.start_ms)
    set_time(message.end_time, scheduler.end_ms)
    return message
