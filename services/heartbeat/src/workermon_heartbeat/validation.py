"""Checks of what a worker may report; a bad value is INVALID_ARGUMENT naming the field.

The limits themselves, these included, are workermon_core.validation's (the one place they live);
what is here is how a worker's report is walked.
"""

from __future__ import annotations

from collections.abc import Iterable

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.errors import InvalidArgument
from workermon_core.validation import (
    MAX_ACKS,
    MAX_ACTIVE_JOB_IDS,
    MAX_BINS,
    MAX_GAUGES,
    MAX_HOSTNAME,
    MAX_JOB_ID,
    MAX_LABELS,
    MAX_QUEUES,
    MAX_REDIS_CLIENTS,
    MAX_REPORT_BYTES,
    MAX_TIMINGS,
    queue_name,
    text,
    timestamp,
    worker_id,
)

__all__ = ["acks", "report", "worker_id"]


def report(rep: pb.WorkerReport, field: str = "report") -> None:
    """Check every field of a beat's report."""
    _identity(rep, field)
    _queues_and_labels(rep, field)
    _jobs_and_figures(rep, field)
    _timings(rep, field)
    if rep.ByteSize() > MAX_REPORT_BYTES:
        raise InvalidArgument(field, f"must be at most {MAX_REPORT_BYTES} bytes serialized")


def _identity(rep: pb.WorkerReport, field: str) -> None:
    """Who sends the report: worker and instance ids, host, version and SDK."""
    worker_id(rep.worker_id, f"{field}.worker_id")
    if not rep.instance_id:
        raise InvalidArgument(f"{field}.instance_id", "is required (a new value per process start)")
    text(rep.instance_id, f"{field}.instance_id", 64)
    text(rep.hostname, f"{field}.hostname", MAX_HOSTNAME)
    text(rep.version, f"{field}.version", 64)
    text(rep.sdk, f"{field}.sdk", 64)
    if rep.HasField("started_at"):
        timestamp(rep.started_at, f"{field}.started_at")


def _queues_and_labels(rep: pb.WorkerReport, field: str) -> None:
    """The queues the worker takes jobs from, and its labels."""
    if len(rep.queues) > MAX_QUEUES:
        raise InvalidArgument(
            f"{field}.queues", f"at most {MAX_QUEUES} queues per worker (got {len(rep.queues)})"
        )
    for i, q in enumerate(rep.queues):
        queue_name(q, f"{field}.queues[{i}]")
    if len(rep.labels) > MAX_LABELS:
        raise InvalidArgument(f"{field}.labels", f"at most {MAX_LABELS} labels")
    for key, value in rep.labels.items():
        text(key, f"{field}.labels", 64)
        text(value, f"{field}.labels[{key}]", 256)


def _jobs_and_figures(rep: pb.WorkerReport, field: str) -> None:
    """The jobs the worker is running, its counters and its custom gauges."""
    if len(rep.active_job_ids) > MAX_ACTIVE_JOB_IDS:
        raise InvalidArgument(f"{field}.active_job_ids", f"at most {MAX_ACTIVE_JOB_IDS} ids")
    for i, job in enumerate(rep.active_job_ids):
        text(job, f"{field}.active_job_ids[{i}]", MAX_JOB_ID)
    for name in ("pid", "concurrency", "active_jobs", "processed_total", "failed_total"):
        if getattr(rep, name) < 0:
            raise InvalidArgument(f"{field}.{name}", "must not be negative")
    if len(rep.gauges.custom) > MAX_GAUGES:
        raise InvalidArgument(f"{field}.gauges.custom", f"at most {MAX_GAUGES} gauges")
    for key in rep.gauges.custom:
        text(key, f"{field}.gauges.custom", 64)
    if rep.gauges.event_loop_lag_ms < 0:
        raise InvalidArgument(f"{field}.gauges.event_loop_lag_ms", "must not be negative")
    if len(rep.redis_clients) > MAX_REDIS_CLIENTS:
        raise InvalidArgument(f"{field}.redis_clients", f"at most {MAX_REDIS_CLIENTS} connections")
    for i, client in enumerate(rep.redis_clients):
        text(client.addr, f"{field}.redis_clients[{i}].addr", 64)


def _timings(rep: pb.WorkerReport, field: str) -> None:
    """The per-minute timing sketches: whole minutes, bounded in size."""
    if len(rep.timings) > MAX_TIMINGS:
        raise InvalidArgument(f"{field}.timings", f"at most {MAX_TIMINGS} entries per beat")
    for i, timing in enumerate(rep.timings):
        queue_name(timing.queue, f"{field}.timings[{i}].queue")
        timestamp(timing.minute_time, f"{field}.timings[{i}].minute_time")
        if timing.minute_time.ToMilliseconds() % 60_000:
            raise InvalidArgument(f"{field}.timings[{i}].minute_time", "must be a whole minute")
        for part in ("processing", "wait"):
            sketch = getattr(timing, part)
            if len(sketch.bins) > MAX_BINS or sketch.count < 0:
                raise InvalidArgument(f"{field}.timings[{i}].{part}", f"at most {MAX_BINS} bins, count >= 0")


def acks(items: Iterable[pb.CommandAck], field: str = "acks") -> None:
    """At most MAX_ACKS answers, each naming a command id."""
    seq = list(items)
    if len(seq) > MAX_ACKS:
        raise InvalidArgument(field, f"at most {MAX_ACKS} acknowledgements per beat")
    for i, ack in enumerate(seq):
        if not ack.command_id or len(ack.command_id) > 64:
            raise InvalidArgument(f"{field}[{i}].command_id", "must be 1-64 characters")
        text(ack.result, f"{field}[{i}].result", 1000)
