"""One collection cycle: every queue, one minute, one row each — written at most once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

import structlog

from workermon.heartbeat.v1.heartbeat_service_pb2 import JobTimings
from workermon_core.protos import from_ms
from workermon_core.redis_store import AnyRedis, key_prefix
from workermon_queues.backend import FinishedJob, QueueBackend, QueueState

from . import sketches
from .follower import MINUTE_MS, EventFollower, MinuteCounts, minute_of
from .heartbeat_peer import to_sketch
from .rows import SnapshotRow
from .store import SnapshotStore

log = structlog.get_logger("workermon.collector")

Clock = Callable[[], float]
OnlineWorkers = Callable[[], Awaitable[dict[str, int]]]
WorkerTimings = Callable[[Sequence[str], int], Awaitable[dict[str, JobTimings]]]
T = TypeVar("T")

# One minute's event counters, finished jobs (or why they could not be read) and worker timings, per queue.
MinuteReadings = tuple[
    dict[str, MinuteCounts], dict[str, "list[FinishedJob] | BaseException"], dict[str, JobTimings]
]

CONCURRENCY = 32
MAX_PENDING_ROWS = 200_000
# Minutes no cycle covered are back-filled up to this far back (the minute rows' own retention).
BACKFILL_MAX_MINUTES = 24 * 60


@dataclass
class QueueFailure:
    """A queue the cycle could not cover."""

    queue: str
    message: str


@dataclass
class CycleResult:
    """What one cycle did.

    `skipped_events` counts, per queue, the entries of its event stream in the minute that were not
    events (no event name, or no job id) and were passed over.
    """

    minute: datetime
    rows: list[SnapshotRow] = field(default_factory=list)
    written: list[bool] = field(default_factory=list)
    errors: list[QueueFailure] = field(default_factory=list)
    duration_ms: float = 0.0
    database_error: str = ""
    skipped_events: dict[str, int] = field(default_factory=dict)


@dataclass
class Later:
    """What one queue's minutes after a back-filled one added to its running totals."""

    completed: int = 0
    failed: int = 0

    def as_of(self, counts: MinuteCounts, backfilled: bool) -> MinuteCounts:
        """`counts` with totals as they stood at the end of its minute (approximate when back-filled);
        then counts its minute as "later" for the (older) minutes still to come."""
        dated = replace(
            counts,
            completed_cumulative=max(counts.completed_cumulative - self.completed, 0),
            failed_cumulative=max(counts.failed_cumulative - self.failed, 0),
            approximate=counts.approximate or backfilled,
        )
        self.completed += counts.completed
        self.failed += counts.failed
        return dated


async def _bounded(items: Sequence[str], work: Callable[[str], Awaitable[T]]) -> dict[str, T | BaseException]:
    """Run `work` for every item, at most CONCURRENCY at a time, keeping per-item failures."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: str) -> T:
        async with gate:
            return await work(item)

    results = await asyncio.gather(*(one(i) for i in items), return_exceptions=True)
    return dict(zip(items, results, strict=True))


class Collector:
    """Collects snapshots; keeps rows it could not write and writes them, once each, later."""

    def __init__(
        self,
        backend: QueueBackend,
        follower: EventFollower,
        store: SnapshotStore,
        redis: AnyRedis,
        prefix: str,
        *,
        online_workers: OnlineWorkers | None = None,
        worker_timings: WorkerTimings | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.backend = backend
        self.follower = follower
        self.store = store
        self.redis = redis
        self.status_key = key_prefix(prefix) + ":col:status"
        self.online_workers = online_workers
        self.worker_timings = worker_timings
        self.clock = clock
        # Keyed by (queue, minute) so a row kept twice is still written once; oldest dropped past the cap.
        self.pending: OrderedDict[tuple[str, datetime], SnapshotRow] = OrderedDict()
        # Each queue's running totals (completed, failed) in the newest row seen, to notice a reset.
        self.totals_seen: dict[str, tuple[int, int]] = {}
        self.last: CycleResult | None = None
        self._lock = asyncio.Lock()
        # Called with each cycle's result once its rows are written (the incident rules' trigger).
        self.after_cycle: list[Callable[[CycleResult], Coroutine[Any, Any, None]]] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()

    def last_full_minute(self) -> int:
        """Start of the last complete minute by the clock, in ms."""
        return minute_of(int(self.clock() * 1000)) - MINUTE_MS

    async def follow_all(self) -> None:
        """Bring every queue's counters up to date (also run between cycles, so streams never outrun us)."""
        await self.follower.follow_many(await self.backend.discover(), int(self.clock() * 1000))

    async def collect(self, queues: Sequence[str] | None = None, minute_ms: int | None = None) -> CycleResult:
        """Collect one minute (default: the last full one) for the named queues (default: all)."""
        async with self._lock:
            result = await self._collect(queues, minute_ms)
        for hook in self.after_cycle:
            # In the background: whoever reacts to new rows (incident rules) must not delay the cycle.
            task = asyncio.create_task(hook(result))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)
        return result

    async def _collect(self, queues: Sequence[str] | None, minute_ms: int | None) -> CycleResult:
        started = time.perf_counter()
        minute = self.last_full_minute() if minute_ms is None else minute_of(minute_ms)
        now = int(self.clock() * 1000)
        result = CycleResult(minute=from_ms(minute))
        missed: list[int] = []
        if minute_ms is None:
            newest = await self._newest_collected_minute()
            if newest is not None and minute < newest:
                # The clock stepped back: writing "now" under an older minute would misdate the counts.
                result.errors.append(
                    QueueFailure(
                        "",
                        f"clock is behind the newest collected minute {from_ms(newest).isoformat()}; skipped",
                    )
                )
                log.warning("clock_stepped_back", minute=result.minute.isoformat())
                return result
            missed = self._missed_minutes(newest, minute)
        names = sorted(set(queues) if queues else set(await self.backend.discover()))

        await self.follower.follow_many(names, now)
        # Independent reads, each a couple of round trips for all queues: overlap them.
        states, online, readings, first_seen = await asyncio.gather(
            self.backend.states(names, now),
            self._online(),
            self._minute_readings(names, minute),
            self.follower.first_seen(names),
        )
        backfill = _backfill_plan(names, missed, first_seen, minute)
        collected_at = from_ms(int(self.clock() * 1000))
        later = {name: Later() for name in names}
        self._minute_rows(names, minute, readings, states, online, collected_at, later, result)
        # Newest first, so each back-filled minute knows what the minutes after it added to the totals.
        for each in sorted(backfill, reverse=True):
            readings = await self._minute_readings(backfill[each], each)
            self._minute_rows(backfill[each], each, readings, states, online, collected_at, later, result)
        result.rows.sort(key=lambda row: (row.minute, row.queue))
        result.rows = await self._mark_resets(result.rows)
        duration = (time.perf_counter() - started) * 1000
        result.rows = [_with_duration(r, duration) for r in result.rows]
        result.written = await self._write(result)
        # Rows not written are kept pending and written later: the minutes are covered either way.
        await self.follower.forget_first_seen([q for q, first in first_seen.items() if first <= minute])
        result.duration_ms = (time.perf_counter() - started) * 1000
        self.last = result
        await self._publish_status(result)
        log.info(
            "collected",
            minute=result.minute.isoformat(),
            queues=sum(1 for row in result.rows if row.minute == result.minute),
            backfilled_minutes=len(backfill),
            written=sum(result.written),
            errors=len(result.errors),
            skipped_events=sum(result.skipped_events.values()),
            ms=round(result.duration_ms, 1),
        )
        return result

    async def _mark_resets(self, rows: list[SnapshotRow]) -> list[SnapshotRow]:
        """Flag rows whose running totals are below the queue's previous row's (in time order): the
        counters started again, so no one reads a negative or huge rate across them."""
        unknown = sorted({row.queue for row in rows} - self.totals_seen.keys())
        for queue in unknown:
            # After a restart, the previous totals are the newest stored row's (if the database answers).
            with contextlib.suppress(Exception):
                latest = await self.store.latest(queue)
                if latest is not None:
                    self.totals_seen[queue] = (latest.completed_cumulative, latest.failed_cumulative)
        marked = []
        for each in rows:
            row = each
            totals = (row.completed_cumulative, row.failed_cumulative)
            before = self.totals_seen.get(row.queue)
            if before is not None and (totals[0] < before[0] or totals[1] < before[1]):
                log.warning(
                    "counters_reset",
                    queue=row.queue,
                    minute=row.minute.isoformat(),
                    before=before,
                    now=totals,
                )
                row = replace(row, counters_reset=True)
            self.totals_seen[row.queue] = totals
            marked.append(row)
        return marked

    @staticmethod
    def _missed_minutes(newest: int | None, minute: int) -> list[int]:
        """Minutes between the newest collected one and `minute` that no cycle covered (the collector, or
        the Redis it keeps its counters in, was down), oldest first, at most BACKFILL_MAX_MINUTES."""
        if newest is None or minute - newest <= MINUTE_MS:
            return []
        first = max(newest + MINUTE_MS, minute - BACKFILL_MAX_MINUTES * MINUTE_MS)
        if first > newest + MINUTE_MS:
            log.warning(
                "backfill_limited",
                from_minute=from_ms(newest + MINUTE_MS).isoformat(),
                kept_from=from_ms(first).isoformat(),
            )
        return list(range(first, minute, MINUTE_MS))

    async def _minute_readings(self, names: Sequence[str], minute: int) -> MinuteReadings:
        """What the event counters, the finished jobs and the workers' timings say about `minute`.

        The counters come first: a queue they say finished nothing in the minute (exactly: not an
        approximate minute) has no finished jobs to read, and most queues, most minutes, are idle.
        """
        counts, reported = await asyncio.gather(
            self.follower.minutes(names, minute), self._reported_timings(names, minute)
        )
        busy = [n for n in names if counts[n].completed or counts[n].failed or counts[n].approximate]
        finished: dict[str, list[FinishedJob] | BaseException] = {name: [] for name in names}
        if busy:
            finished.update(await self._finished(busy, minute))
        return counts, finished, reported

    def _minute_rows(  # noqa: PLR0917 - the cycle's shared readings, passed down once
        self,
        names: Sequence[str],
        minute: int,
        readings: MinuteReadings,
        states: dict[str, QueueState],
        online: dict[str, int] | None,
        collected_at: datetime,
        later: dict[str, Later],
        result: CycleResult,
    ) -> None:
        """One row per queue for `minute`. A back-filled minute (older than the cycle's) has exact
        completions and failures from the event counters, but its job counts are the ones read now:
        it is marked approximate, and its running totals exclude what the minutes after it added."""
        counts, finished, reported = readings
        backfilled = minute != int(result.minute.timestamp() * 1000)
        for name in names:
            jobs = finished[name]
            if isinstance(jobs, BaseException):
                if not backfilled:
                    result.errors.append(QueueFailure(name, f"{type(jobs).__name__}: {jobs}"))
                continue
            state = states.get(name)
            if state is not None and state.problem:
                # Keys BullMQ did not write: a row of partial counts would misstate the history.
                if not backfilled:
                    result.errors.append(QueueFailure(name, state.problem))
                continue
            minute_counts = later[name].as_of(counts[name], backfilled)
            if minute_counts.skipped:
                result.skipped_events[name] = result.skipped_events.get(name, 0) + minute_counts.skipped
            if state is None or (
                not state.exists and not minute_counts.completed and not minute_counts.failed
            ):
                if not backfilled:
                    # The queue's keys vanished (obliterated mid-run): nothing left to describe.
                    result.errors.append(QueueFailure(name, "queue no longer exists"))
                continue
            result.rows.append(
                self._row(name, minute, state, minute_counts, jobs, online, collected_at, reported.get(name))
            )

    def _row(  # noqa: PLR0917 - one value per part of the row
        self,
        name: str,
        minute: int,
        state: QueueState,
        counts: MinuteCounts,
        jobs: list[FinishedJob],
        online: dict[str, int] | None,
        collected_at: datetime,
        reported: JobTimings | None = None,
    ) -> SnapshotRow:
        processing = sketches.new_sketch()
        waiting = sketches.new_sketch()
        for job in jobs:
            if job.started_ms is not None and job.finished_ms is not None:
                processing.add(max(job.finished_ms - job.started_ms, 0))
            if job.started_ms is not None:
                waiting.add(max(job.started_ms - job.enqueued_ms, 0))
        source = "jobs" if processing.count else ""
        finished = counts.completed + counts.failed
        from_workers = to_sketch(reported.processing) if reported is not None else None
        # Job timestamps are exact but vanish with removed jobs; the workers' sketches cover those.
        if from_workers is not None and processing.count < finished and from_workers.count > processing.count:
            processing = from_workers
            waiting = to_sketch(reported.wait) or sketches.new_sketch()  # type: ignore[union-attr]
            source = "workers"
        processing_summary = sketches.summarize(processing)
        wait_summary = sketches.summarize(waiting)
        return SnapshotRow(
            queue=name,
            minute=from_ms(minute),
            waiting=state.waiting,
            active=state.active,
            delayed=state.delayed,
            prioritized=state.prioritized,
            waiting_children=state.waiting_children,
            completed=state.completed,
            failed=state.failed,
            paused=state.paused,
            completed_in_minute=counts.completed,
            failed_in_minute=counts.failed,
            retried_in_minute=counts.retried,
            stalled_in_minute=counts.stalled,
            counts_approximate=counts.approximate,
            completed_cumulative=counts.completed_cumulative,
            failed_cumulative=counts.failed_cumulative,
            collected_at=collected_at,
            collection_ms=0.0,
            processing=processing_summary,
            wait=wait_summary,
            duration_source=source if processing_summary or wait_summary else "",
            oldest_waiting_ms=state.oldest_waiting_ms,
            online_workers=None if online is None else online.get(name, 0),
            failures_by_category=dict(counts.failures_by_category or {}),
        )

    async def _online(self) -> dict[str, int] | None:
        if self.online_workers is None:
            return None
        try:
            return await self.online_workers()
        except Exception as exc:
            log.warning("online_workers_unavailable", error=str(exc))
            return None

    async def _finished(
        self, names: Sequence[str], minute: int
    ) -> dict[str, list[FinishedJob] | BaseException]:
        """Jobs finished in the minute, per queue; one queue's failure does not sink the others."""
        try:
            return dict(await self.backend.finished_between_many(names, minute, minute + MINUTE_MS))
        except Exception:
            return await _bounded(
                names, lambda q: self.backend.finished_between(q, minute, minute + MINUTE_MS)
            )

    async def _reported_timings(self, names: Sequence[str], minute: int) -> dict[str, JobTimings]:
        if self.worker_timings is None or not names:
            return {}
        try:
            return await self.worker_timings(names, minute)
        except Exception as exc:
            log.warning("worker_timings_unavailable", error=str(exc))
            return {}

    async def _write(self, result: CycleResult) -> list[bool]:
        """Write earlier unwritten rows first, then this cycle's; on failure keep them all for later."""
        backlog = list(self.pending.values())
        try:
            if backlog:
                await self.store.write(backlog)
                self.pending.clear()
                log.info("pending_rows_written", rows=len(backlog))
            return await self.store.write(result.rows)
        except Exception as exc:
            result.database_error = f"{type(exc).__name__}: {exc}"
            log.warning("snapshot_write_failed", error=result.database_error, pending=len(self.pending))
            for row in result.rows:
                self.pending[(row.queue, row.minute)] = row
            while len(self.pending) > MAX_PENDING_ROWS:
                self.pending.popitem(last=False)
            return [False] * len(result.rows)

    async def follow_between_cycles(self) -> None:
        """Follow every queue's events and write rows kept from failed cycles (run every few seconds)."""
        await self.follow_all()
        await self.flush_pending()

    async def flush_pending(self) -> int:
        """Try to write the rows kept from failed cycles; returns how many were written."""
        if not self.pending:
            return 0
        async with self._lock:
            rows = list(self.pending.values())
            try:
                written = await self.store.write(rows)
            except Exception as exc:
                log.debug("pending_flush_failed", error=str(exc))
                return 0
            self.pending.clear()
            return sum(written)

    async def _publish_status(self, result: CycleResult) -> None:
        """Share the last cycle with every replica (GetCollectorStatus may be asked anywhere)."""
        own = [row for row in result.rows if row.minute == result.minute]  # back-filled rows aside
        status: dict[str, Any] = {
            "run_ms": int(self.clock() * 1000),
            "minute_ms": int(result.minute.timestamp() * 1000),
            "duration_ms": result.duration_ms,
            "queues": len(own),
            "names": [r.queue for r in own],
            "errors": [[e.queue, e.message] for e in result.errors[:100]],
            "pending": len(self.pending),
            "database_error": result.database_error,
            "skipped_events": result.skipped_events,
        }
        try:
            await self.redis.set(self.status_key, json.dumps(status))
        except Exception as exc:
            log.debug("status_publish_failed", error=str(exc))

    async def _newest_collected_minute(self) -> int | None:
        """The newest minute this or any replica wrote rows for."""
        known = []
        if self.last is not None and self.last.rows:
            known.append(int(self.last.minute.timestamp() * 1000))
        with contextlib.suppress(Exception):
            shared = await self.status()
            if shared and shared.get("queues"):
                known.append(int(shared["minute_ms"]))
        return max(known, default=None)

    async def status(self) -> dict[str, Any] | None:
        """The last cycle of any replica."""
        raw = await self.redis.get(self.status_key)
        return json.loads(raw) if raw else None


def _backfill_plan(
    names: Sequence[str], missed: Sequence[int], first_seen: Mapping[str, int], minute: int
) -> dict[int, list[str]]:
    """The minutes before `minute` to back-fill and the queues of each: every queue for the minutes no
    cycle covered (`missed`); a queue seen for the first time for the minutes since its stream's first
    events (at most BACKFILL_MAX_MINUTES back), which no row describes yet."""
    plan: dict[int, set[str]] = {each: set(names) for each in missed}
    oldest = minute - BACKFILL_MAX_MINUTES * MINUTE_MS
    for queue, first in first_seen.items():
        for each in range(max(first, oldest), minute, MINUTE_MS):
            plan.setdefault(each, set()).add(queue)
    return {each: sorted(queues) for each, queues in plan.items()}


def _with_duration(row: SnapshotRow, duration_ms: float) -> SnapshotRow:
    return replace(row, collection_ms=duration_ms)
