"""Flows (parent and child jobs) and job schedulers: the shapes a MonitorService shows and the protocol a
backend offers.

A parent keeps its children by kind: `pending` (not finished yet; the parent waits in `waiting_children`
while any remain), `processed` (completed, with their return values), `ignored` (failed, but the
parent was told to go on without them) and `failed` (failed, and failing the parent). A child is named
by its queue and id, since a flow may span queues.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .jobs import JobSummary

__all__ = [
    "CHILD_KINDS",
    "ChildPage",
    "DependencyCounts",
    "FlowActions",
    "JobChild",
    "JobRef",
    "JobScheduler",
    "PendingChildrenRemoved",
    "SchedulerPage",
]

CHILD_KINDS: tuple[str, ...] = ("pending", "processed", "ignored", "failed")
"""Kinds of children, in the order a listing of every kind walks them."""


@dataclass(frozen=True, slots=True)
class JobRef:
    """A job named across queues: its queue and id, and the Redis key it lives at.

    `queue` is "" when the key lies under another prefix than the monitored one (then only `key` says
    where it is)."""

    queue: str
    job_id: str
    key: str


@dataclass(frozen=True, slots=True)
class DependencyCounts:
    """A parent's children per kind."""

    pending: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """Children of every kind."""
        return self.pending + self.processed + self.ignored + self.failed


@dataclass(frozen=True, slots=True)
class JobChild:
    """One child of a parent: where it is, what kind of dependency it is, and its own state.

    `state` is None when the child's hash is gone (removed since it finished) or the child is in no
    state. `value` is the return value (processed) or failure reason (ignored) the parent recorded,
    cut to the requested size (`value_truncated`). `children` are the child's own children, so a tree
    can show which nodes expand.
    """

    ref: JobRef
    kind: str
    state: str | None
    name: str
    exists: bool
    value: str
    value_truncated: bool
    failed_reason: str
    children: DependencyCounts


@dataclass(frozen=True, slots=True)
class ChildPage:
    """A page of children; `next_cursor` is "" at the end, `total` counts the children of the listed kinds."""

    children: list[JobChild]
    next_cursor: str
    total: int


@dataclass(frozen=True, slots=True)
class PendingChildrenRemoved:
    """What removing a parent's pending children did.

    `removed` children were deleted (they had not run), `detached` ones had failed and were only
    unlinked from the parent (they stay in their failed set), `still_pending` are running now and still
    hold the parent. `state` is the parent's state afterwards.
    """

    removed: int
    detached: int
    still_pending: int
    state: str | None


@dataclass(frozen=True, slots=True)
class JobScheduler:
    """A job scheduler (BullMQ 5.16+ `upsertJobScheduler`, or an older repeatable job).

    Times are ms since the epoch, None when not set. `legacy` marks a repeatable job of the older
    layout, known only from its key (no template, no iteration count). `template_data` is cut to the
    requested size (`template_data_truncated`).
    """

    id: str
    name: str
    pattern: str
    every_ms: int | None
    tz: str
    next_run_ms: int | None
    iteration_count: int | None
    limit: int | None
    start_ms: int | None
    end_ms: int | None
    offset_ms: int | None
    template_data: str
    template_data_truncated: bool
    template_options: str
    legacy: bool


@dataclass(frozen=True, slots=True)
class SchedulerPage:
    """A page of job schedulers, soonest next run first; `next_cursor` is "" at the end."""

    schedulers: list[JobScheduler]
    next_cursor: str
    total: int


@runtime_checkable
class FlowActions(Protocol):
    """Reading flows and schedulers and acting on them; unknown queues, jobs and schedulers raise NotFound."""

    async def flow_of(self, queue: str, job_id: str) -> tuple[JobRef | None, DependencyCounts]:
        """The job's parent (None outside a flow, or for its root) and its children per kind."""
        ...

    async def list_children(  # noqa: PLR0917 - the service passes its request fields in this order
        self,
        queue: str,
        job_id: str,
        kinds: Sequence[str],
        page_size: int,
        cursor: str | None,
        max_bytes: int,
    ) -> ChildPage:
        """A page of the job's children of `kinds`, in that order."""
        ...

    async def remove_pending_children(self, queue: str, job_id: str, limit: int) -> PendingChildrenRemoved:
        """Remove a parent's pending children (at most `limit` pending, else FailedPrecondition)."""
        ...

    async def list_schedulers(
        self, queue: str, page_size: int, cursor: str | None, max_bytes: int
    ) -> SchedulerPage:
        """A page of the queue's job schedulers, soonest next run first."""
        ...

    async def run_scheduler(self, queue: str, scheduler_id: str) -> JobSummary:
        """Add one job now from the scheduler's template (its schedule is untouched)."""
        ...

    async def remove_scheduler(self, queue: str, scheduler_id: str) -> None:
        """Remove the scheduler and its next scheduled job."""
        ...
