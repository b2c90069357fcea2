"""Exporting a queue's jobs as JSON lines or CSV, one chunk per listed page, within size limits."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workermon_core.errors import FailedPrecondition
from workermon_queues.jobs import JobActions, JobSummary

PAGE = 1000
COLUMNS = (
    "queue",
    "job_id",
    "name",
    "state",
    "attempts_made",
    "max_attempts",
    "created",
    "processed",
    "finished",
    "duration_ms",
    "delay_ms",
    "priority",
    "failed_reason",
    "failure_category",
)
DATA_COLUMNS = ("data", "data_bytes", "data_truncated")
CONTENT_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class ExportLimits:
    """At most `max_jobs` jobs and about `max_bytes` bytes per export; data cut at `data_max_bytes`."""

    max_jobs: int
    max_bytes: int
    data_max_bytes: int


@dataclass
class ExportTally:
    """How far an export got (for its audit entry)."""

    jobs: int = 0
    bytes: int = 0
    stopped: str = ""


def _iso(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z") if ms else ""


def _row(queue: str, job: JobSummary) -> dict[str, Any]:
    return {
        "queue": queue,
        "job_id": job.id,
        "name": job.name,
        "state": job.state,
        "attempts_made": job.attempts_made,
        "max_attempts": job.max_attempts,
        "created": _iso(job.created_ms),
        "processed": _iso(job.processed_ms),
        "finished": _iso(job.finished_ms),
        "duration_ms": job.duration_ms,
        "delay_ms": job.delay_ms,
        "priority": job.priority,
        "failed_reason": job.failed_reason,
        "failure_category": job.failure_category,
    }


def _encode(rows: list[dict[str, Any]], fmt: str, header: bool, include_data: bool) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*COLUMNS, *(DATA_COLUMNS if include_data else ())])
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _notice(fmt: str, message: str) -> bytes:
    """The last line of an export cut short, saying why (a comment line in CSV)."""
    if fmt == "jsonl":
        return (json.dumps({"export_stopped": message}) + "\n").encode()
    return f"# export stopped: {message}\n".encode()


async def chunks(  # noqa: PLR0917 - the request's filter fields, in its order
    jobs: JobActions,
    queue: str,
    states: Sequence[str],
    name_prefix: str,
    category: str,
    fmt: str,
    include_data: bool,
    limits: ExportLimits,
    tally: ExportTally,
) -> AsyncIterator[bytes]:
    """The export, a chunk per page of jobs. Refused up front (FAILED_PRECONDITION) when the states alone
    hold more jobs than `max_jobs` and no filter narrows them; cut short with a closing notice line when
    a filtered export reaches `max_jobs`, or any export `max_bytes`."""
    cursor: str | None = None
    first = True
    while True:
        page = await jobs.list_jobs(queue, states, PAGE, cursor, name_prefix=name_prefix, category=category)
        if first and page.total > limits.max_jobs and not (name_prefix or category):
            raise FailedPrecondition(
                f"an export may hold at most {limits.max_jobs} jobs (WORKERMON_EXPORT_MAX_JOBS) and these "
                f"states hold {page.total}; choose fewer states or filter by name or failure category",
                reason="EXPORT_LIMIT_EXCEEDED",
                metadata={"limit": str(limits.max_jobs), "total": str(page.total)},
            )
        rows = [_row(queue, job) for job in page.jobs[: limits.max_jobs - tally.jobs]]
        if include_data and rows:
            data = await jobs.job_data(queue, [r["job_id"] for r in rows], limits.data_max_bytes)
            for row, (value, size) in zip(rows, data, strict=True):
                row.update(data=value, data_bytes=size, data_truncated=size > limits.data_max_bytes)
        chunk = _encode(rows, fmt, first, include_data)
        first = False
        if tally.bytes + len(chunk) > limits.max_bytes:
            tally.stopped = (
                f"the export limit of {limits.max_bytes} bytes (WORKERMON_EXPORT_MAX_BYTES) was reached"
            )
            yield _notice(fmt, tally.stopped)
            return
        tally.jobs += len(rows)
        tally.bytes += len(chunk)
        if chunk:
            yield chunk
        cursor = page.next_cursor
        if tally.jobs >= limits.max_jobs and (cursor or len(page.jobs) > len(rows)):
            tally.stopped = (
                f"the export limit of {limits.max_jobs} jobs (WORKERMON_EXPORT_MAX_JOBS) was reached"
            )
            yield _notice(fmt, tally.stopped)
            return
        if not cursor:
            return
