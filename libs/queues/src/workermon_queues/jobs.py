"""Job browsing and job actions: the shapes a MonitorService shows and the protocol a backend offers.

Summaries never carry a job's payload or result (they can be megabytes); `JobDetail` carries them cut
to a size the caller chooses. States use one vocabulary everywhere (`JOB_STATES`); BullMQ's
`waiting-children` is spelled `waiting_children`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .counts import COUNT_FIELDS
from .errors import FailedPrecondition

__all__ = [
    "CLEANABLE_STATES",
    "JOB_STATES",
    "JobActions",
    "JobDetail",
    "JobIsActive",
    "JobPage",
    "JobSummary",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "TimelineEntry",
]

JOB_STATES: tuple[str, ...] = (*COUNT_FIELDS, "paused")
"""Every state `list_jobs` accepts (`paused` is the pre-v5 BullMQ paused list; newer BullMQ keeps the
jobs of a paused queue in `waiting`)."""

CLEANABLE_STATES: tuple[str, ...] = ("completed", "failed", "wait", "delayed", "prioritized", "paused")
"""States `clean` accepts (`waiting` is taken as `wait`)."""


class JobIsActive(FailedPrecondition):
    """The job is being processed (or its lock is held): it can only be cancelled through its worker."""

    def __init__(self, queue: str, job_id: str) -> None:
        super().__init__(
            f"job {job_id} of queue {queue} is active; cancel it through its worker instead",
            reason="JOB_ACTIVE",
            metadata={"queue": queue, "job_id": job_id},
        )
        self.queue = queue
        self.job_id = job_id


@dataclass(frozen=True, slots=True)
class JobSummary:
    """One row of a job listing; times are ms since the epoch, None when unknown (not stored, or stored
    as something that is not a time).

    `state` is the state the job was listed under (or found in). `max_attempts` is the job's
    `attempts` option (at least 1). `duration_ms` is finished - processed of the last attempt.
    `failed_reason` is the first line of the failure message, at most 300 characters, and
    `failure_category` its category ("" when the job has no failure message).
    `deduplication_id` is BullMQ's `deid` ("" for none), `stalled_count` its `stc` (`stalledCounter`
    in older BullMQ 5), and
    `stalled_suspected` marks an active job whose lock is gone (its worker stopped renewing it).
    """

    id: str
    name: str
    state: str
    attempts_made: int
    max_attempts: int
    created_ms: int | None
    processed_ms: int | None
    finished_ms: int | None
    duration_ms: int | None
    delay_ms: int
    priority: int
    failed_reason: str
    failure_category: str
    deduplication_id: str = ""
    stalled_count: int = 0
    stalled_suspected: bool = False


@dataclass(frozen=True, slots=True)
class JobPage:
    """A page of jobs.

    `next_cursor` is "" at the end. `total` counts the jobs in the listed states (not only the ones
    matching the filters). `examined` is how many jobs this call looked at; a filtered page may hold
    fewer rows than asked for (even none) and still have a `next_cursor`, when the per-call bound on
    examined jobs was reached.
    """

    jobs: list[JobSummary]
    next_cursor: str
    total: int
    examined: int


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One moment of a job's life: `kind` is created, delayed_until, processed or finished; or a `note`
    (no time) on something stored that could not be read as BullMQ writes it."""

    kind: str
    time_ms: int | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class JobDetail:
    """Everything about one job.

    `data` / `return_value` are the stored JSON text, cut to the requested size when
    `*_truncated` (then no longer valid JSON); `*_bytes` is the full stored size. `logs` are the last
    100 log lines, oldest first, of `logs_total`. `processed_by` is the worker name BullMQ recorded
    (`pb`), `parent_key` the Redis key of the parent job ("" for none).
    """

    summary: JobSummary
    data: str
    data_bytes: int
    data_truncated: bool
    return_value: str
    return_value_bytes: int
    return_value_truncated: bool
    options_json: str
    progress_json: str
    stacktrace: list[str]
    logs: list[str]
    logs_total: int
    processed_by: str
    failed_reason_full: str
    parent_key: str
    timeline: list[TimelineEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A job a search found, its queue, and what matched (`id`, `name`, `data` or `failed_reason`)."""

    queue: str
    job: JobSummary
    matched: str


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A scan: jobs of `states` in `queues` whose name starts with `name_prefix` and whose data or failure
    reason contains `needle` (ignoring ASCII case), `page_size` hits from `cursor`. `strict` makes an
    unknown queue NotFound (queues the caller named) rather than empty (queues discovered)."""

    queues: Sequence[str]
    states: Sequence[str]
    name_prefix: str = ""
    needle: str = ""
    page_size: int = 50
    cursor: str | None = None
    strict: bool = True


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Hits of one search call; `next_cursor` is "" once every job was examined; `scanned` counts the
    jobs examined by this call and the earlier ones, `total` the jobs there were when the search began."""

    hits: list[SearchHit]
    next_cursor: str
    scanned: int
    total: int


@runtime_checkable
class JobActions(Protocol):
    """Browsing a queue's jobs and acting on them; unknown queues and jobs raise NotFound."""

    async def exists(self, queue: str) -> bool:
        """True when the queue has been created (it has a meta hash or an id counter)."""
        ...

    async def pause(self, queue: str) -> bool:
        """Pause the queue; True if it was running."""
        ...

    async def resume(self, queue: str) -> bool:
        """Resume the queue; True if it was paused."""
        ...

    async def retry_failed(self, queue: str, limit: int | None) -> int:
        """Move failed jobs (all, or the newest `limit`) back to waiting; the number moved."""
        ...

    async def promote_delayed(self, queue: str, limit: int | None) -> int:
        """Move delayed jobs (all, or the first `limit` as listed) to waiting; the number moved."""
        ...

    async def drain(self, queue: str, include_delayed: bool) -> int:
        """Remove the jobs waiting to run (and delayed ones when asked); the number removed."""
        ...

    async def clean(self, queue: str, state: str, grace_ms: int, limit: int) -> list[str]:
        """Remove jobs of `state` older than `grace_ms` (at most `limit`, 0 = all); their ids."""
        ...

    async def add_job(  # noqa: PLR0917 - the service passes its request fields in this order
        self, queue: str, name: str, data_json: str, delay_ms: int, priority: int, attempts: int
    ) -> JobSummary:
        """Add a job; its summary as stored."""
        ...

    async def list_jobs(  # noqa: PLR0917 - the service passes its request fields in this order
        self,
        queue: str,
        states: Sequence[str],
        page_size: int,
        cursor: str | None,
        job_id: str = "",
        name_prefix: str = "",
        category: str = "",
    ) -> JobPage:
        """A page of jobs in `states` (in that order, newest first within each)."""
        ...

    async def get_job(self, queue: str, job_id: str, max_bytes: int) -> JobDetail:
        """One job in full, payload and result cut to `max_bytes`."""
        ...

    async def retry_job(self, queue: str, job_id: str) -> str:
        """Move a failed or completed job back to waiting; the state it left."""
        ...

    async def deduplicated_job(self, queue: str, deduplication_id: str) -> tuple[JobSummary, int | None]:
        """The job holding a deduplication id and the ms until the id expires (None: no TTL)."""
        ...

    async def release_deduplication(self, queue: str, job_id: str) -> str:
        """Free the deduplication id the job holds; the id."""
        ...

    async def promote_job(self, queue: str, job_id: str) -> str:
        """Run a delayed job now; the state it left (`delayed`)."""
        ...

    async def remove_job(self, queue: str, job_id: str) -> str:
        """Remove a job that is not active; the state it was in."""
        ...

    async def job_state(self, queue: str, job_id: str) -> str | None:
        """The job's state (None when its hash exists but it is in no state)."""
        ...

    async def lookup(self, queue: str, job_id: str) -> JobSummary | None:
        """A job's summary in whatever state it is, or None when its hash is gone."""
        ...

    async def job_data(self, queue: str, job_ids: Sequence[str], max_bytes: int) -> list[tuple[str, int]]:
        """Each job's data cut to `max_bytes`, with its full size."""
        ...

    async def obliterate(self, queue: str, force: bool) -> int:
        """Destroy a queue and its jobs in batches; the batches it took."""
        ...

    async def search_by_id(self, queues: Sequence[str], states: Sequence[str], job_id: str) -> SearchPage:
        """The job with this id in each of `queues` (in one of `states`, when given)."""
        ...

    async def search_scan(self, query: SearchQuery) -> SearchPage:
        """A bounded, resumable scan for jobs by name prefix and text in data or failure reason."""
        ...

    async def close(self) -> None:
        """Release what the implementation holds (never the caller's Redis client)."""
        ...
