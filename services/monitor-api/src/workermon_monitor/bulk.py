"""Bulk job actions: the jobs they select, the batches they run in, and the operations callers poll.

Operations live in the memory of the process that started them (the newest `MAX_KEPT`): with several
monitor replicas a poll must reach that replica, and a restart forgets them (their audit entries stay
PENDING, which is true: how far they got is unknown).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.errors import FailedPrecondition
from workermon_queues.errors import QueueError
from workermon_queues.jobs import JobActions

MAX_KEPT = 500
BATCH = 100
SKIPPED_CODES = ("FAILED_PRECONDITION", "NOT_FOUND")
ACTION_NAMES = {
    pb.BULK_JOB_ACTION_RETRY: "retry",
    pb.BULK_JOB_ACTION_PROMOTE: "promote",
    pb.BULK_JOB_ACTION_REMOVE: "remove",
}


def over_limit(count: int, limit: int) -> FailedPrecondition:
    """The refusal of a bulk action selecting more jobs than the configured maximum."""
    return FailedPrecondition(
        f"a bulk action may handle at most {limit} jobs (WORKERMON_BULK_MAX_JOBS), and this one selects "
        f"{'more than ' if count > limit else ''}{count if count <= limit else limit}; narrow the filter",
        reason="BULK_LIMIT_EXCEEDED",
        metadata={"limit": str(limit)},
    )


async def matching_ids(  # noqa: PLR0917 - the request's filter fields, in its order
    jobs: JobActions,
    queue: str,
    states: Sequence[str],
    name_prefix: str,
    category: str,
    limit: int,
) -> list[str]:
    """Ids of the jobs matching the filter, at most `limit` + 1 (one more says the limit was passed)."""
    ids: list[str] = []
    cursor: str | None = None
    while len(ids) <= limit:
        page = await jobs.list_jobs(queue, states, 1000, cursor, name_prefix=name_prefix, category=category)
        ids += [job.id for job in page.jobs]
        cursor = page.next_cursor
        if not cursor:
            break
    return list(dict.fromkeys(ids))[: limit + 1]


class BulkOperations:
    """Running and recent bulk operations of this process, by id."""

    def __init__(self, keep: int = MAX_KEPT) -> None:
        self.keep = keep
        self._operations: OrderedDict[str, pb.BulkOperation] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def new(self, queue: str, action: pb.BulkJobAction.ValueType, total: int) -> pb.BulkOperation:
        """A new RUNNING operation, kept until `keep` newer ones push it out."""
        operation = pb.BulkOperation(
            operation_id=uuid.uuid4().hex,
            queue=queue,
            action=action,
            state=pb.BULK_OPERATION_STATE_RUNNING,
            total=total,
        )
        operation.create_time.GetCurrentTime()
        self._operations[operation.operation_id] = operation
        while len(self._operations) > self.keep:
            self._operations.popitem(last=False)
        return operation

    def get(self, operation_id: str) -> pb.BulkOperation | None:
        """The operation as it stands, or None when unknown here."""
        return self._operations.get(operation_id)

    def start(self, run: Awaitable[None]) -> None:
        """Run `run` in the background, holding a reference so it is not collected midway."""
        task = asyncio.ensure_future(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel running operations (their audit entries stay PENDING: their end is unknown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run(
    jobs: JobActions,
    operation: pb.BulkOperation,
    ids: Sequence[str],
    on_batch: Callable[[], None] = lambda: None,
) -> None:
    """Apply the operation's action to each job, BATCH at a time; a job in a state the action does not
    apply to (or gone meanwhile) is skipped, not failed."""
    act = {
        pb.BULK_JOB_ACTION_RETRY: jobs.retry_job,
        pb.BULK_JOB_ACTION_PROMOTE: jobs.promote_job,
        pb.BULK_JOB_ACTION_REMOVE: jobs.remove_job,
    }[operation.action]
    try:
        await _batches(jobs, operation, ids, act, on_batch)
    except Exception as exc:
        operation.state = pb.BULK_OPERATION_STATE_FAILED
        operation.error = str(exc) or type(exc).__name__
    else:
        operation.state = pb.BULK_OPERATION_STATE_SUCCEEDED
    operation.end_time.GetCurrentTime()


def outcome(operation: pb.BulkOperation) -> tuple[str, dict[str, Any]]:
    """The audit outcome and result of a finished operation."""
    result: dict[str, Any] = {
        "operation_id": operation.operation_id,
        "total": operation.total,
        "succeeded": operation.succeeded,
        "skipped": operation.skipped,
        "failed": operation.failed,
    }
    if operation.error:
        result["error"] = operation.error
    return ("SUCCEEDED" if operation.state == pb.BULK_OPERATION_STATE_SUCCEEDED else "FAILED"), result


async def _batches(
    jobs: JobActions,
    operation: pb.BulkOperation,
    ids: Sequence[str],
    act: Callable[[str, str], Awaitable[str]],
    on_batch: Callable[[], None],
) -> None:
    for start in range(0, len(ids), BATCH):
        for job_id in ids[start : start + BATCH]:
            try:
                await act(operation.queue, job_id)
            except QueueError as exc:
                if exc.code in SKIPPED_CODES:
                    operation.skipped += 1
                else:
                    operation.failed += 1
            else:
                operation.succeeded += 1
            operation.processed += 1
        on_batch()
        await asyncio.sleep(0)  # let other requests (and progress polls) in between batches
