"""What Worker Monitor reads from a job-queue system: queue states, events, finished jobs, and the
`QueueBackend` protocol a backend implements (BullMQ's is `workermon_queues.bullmq.BullMQBackend`).

Queue actions live in `workermon_queues.jobs` (`JobActions`), so a read-only backend stays small."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from .counts import JobCounts


@dataclass(frozen=True, slots=True)
class QueueState:
    """Counts and flags of one queue at one moment.

    `oldest_waiting_ms` is the age at `now_ms` of the oldest job waiting to run (from its `timestamp`,
    the time it was added), or None when nothing waits. It looks at the job next in line in the wait
    list and in the prioritized set, which is the oldest one unless LIFO jobs or priorities let newer
    jobs overtake. It is None too when that job's `timestamp` is not a time (see
    `workermon_queues.replies.epoch_ms`) or lies more than a minute after `now_ms`.

    `problem` says in a sentence why the queue could not be read in full: a key of another type than
    BullMQ writes (`bull:x:wait is a string, expected a list`). The counts of the keys that could be
    read are still given, those of the broken ones are 0. None for a sound queue.
    """

    name: str
    waiting: int
    active: int
    delayed: int
    prioritized: int
    waiting_children: int
    completed: int
    failed: int
    paused: bool
    oldest_waiting_ms: int | None
    exists: bool
    problem: str | None = None

    @property
    def counts(self) -> JobCounts:
        """The job counts alone."""
        return JobCounts.of(self)


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One entry of a queue's event stream (see the module docstring for BullMQ's entries).

    `kind` is the raw event name (`completed`, `failed`, `delayed`, `waiting`, ...), `prev` the state
    the job left when the entry says so, `reason` the failure message of a `failed` entry.
    `will_retry` marks a failed attempt that BullMQ will retry; `attempts_made` is known for final
    failures (and `retries-exhausted` entries) only.
    """

    event_id: str
    time_ms: int
    kind: str
    job_id: str
    reason: str
    attempts_made: int | None
    will_retry: bool
    prev: str = ""

    @property
    def final_failure(self) -> bool:
        """True for a job that failed for good (count these as failures)."""
        return self.kind == "failed" and not self.will_retry


def stream_id_key(stream_id: str) -> tuple[int, int]:
    """A Redis stream id (`ms-seq`, or `ms`) as numbers that sort as the stream does."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events read after a cursor.

    `last_id` is where to continue from (None only when the stream has never had an entry);
    `trimmed` is True when entries after the cursor were trimmed away before being read (counts built
    from the stream are then incomplete); `max_len` is the queue's configured stream cap, when the stream
    had to be described (no cursor, or the cursor's entry gone), else None.
    Read without a cursor (where the stream ends now), `first_id` is the oldest entry still there and
    `trimmed` says whether older ones were ever trimmed away.
    `skipped` holds the ids of entries read past but not understood as events (no event name, or a job's
    event without its job id): `last_id` moves past them all the same. `problem` says why the stream
    could not be read at all (its key is of another type); then there are no events and `last_id` is the
    cursor given.
    """

    events: list[QueueEvent]
    last_id: str | None
    trimmed: bool
    max_len: int | None
    skipped: tuple[str, ...] = ()
    problem: str | None = None
    first_id: str | None = None

    @property
    def consumed(self) -> int:
        """Entries the read moved past (events and skipped entries)."""
        return len(self.events) + len(self.skipped)


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that finished in a time window, with its timestamps in ms since the epoch.

    `enqueued_ms` is when the job was added (for delayed or retried jobs this includes the delay and
    earlier attempts), `started_ms` when its last attempt started, `finished_ms` when it finished.
    """

    job_id: str
    state: Literal["completed", "failed"]
    enqueued_ms: int
    started_ms: int | None
    finished_ms: int | None
    attempts_made: int | None = None


@runtime_checkable
class QueueBackend(Protocol):
    """The read side of a job-queue system, as Worker Monitor's collector uses it."""

    async def discover(self) -> list[str]:
        """Names of the queues to monitor (configured and/or found), sorted."""
        ...

    async def states(self, names: Sequence[str], now_ms: int) -> dict[str, QueueState]:
        """State of every named queue (missing queues come back with `exists=False`)."""
        ...

    async def read_events(self, queue: str, after: str | None, count: int = 1000) -> EventBatch:
        """Up to `count` events after the id `after`; `after=None` returns none, positioned at the end."""
        ...

    async def read_events_many(
        self, cursors: Mapping[str, str | None], count: int = 1000
    ) -> dict[str, EventBatch]:
        """`read_events` for many queues at once (queue -> cursor)."""
        ...

    async def finished_between(
        self, queue: str, start_ms: int, end_ms: int, limit: int = 10_000
    ) -> list[FinishedJob]:
        """Jobs that finished in [start_ms, end_ms), earliest first, at most `limit`."""
        ...

    async def finished_between_many(
        self, queues: Sequence[str], start_ms: int, end_ms: int, limit: int = 10_000
    ) -> dict[str, list[FinishedJob]]:
        """`finished_between` for many queues at once (each capped at `limit`)."""
        ...

    async def latest_event_id(self, queue: str) -> str | None:
        """Id of the newest entry ever added to the queue's event stream, or None."""
        ...
