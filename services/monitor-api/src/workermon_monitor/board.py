"""The queue board: every queue's live counts, status and recent metrics, shared by all callers.

A dashboard of fifty open tabs must not become fifty readers of Redis. Live counts are read at most
once per `live_max_age` (concurrent callers wait for the one read in flight), the queue list at most
every `DISCOVERY_SECONDS` (in the background, and less often, when a SCAN of the whole Redis turns out
slow), and the collector's per-minute history at most every `HISTORY_SECONDS` (it changes once a
minute). Each reading is turned into the API messages once; callers share them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import structlog

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.errors import NotFound
from workermon_core.peer import Peer
from workermon_core.protos import recast
from workermon_core.server import Outage
from workermon_queues.backend import QueueState
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.bullmq.limits import LimitReader, QueueLimits, QueueLoad
from workermon_queues.counts import HasCounts, JobCounts

log = structlog.get_logger("workermon.monitor")

DISCOVERY_SECONDS = 2.0
# Past this, discovery is refreshed in the background and kept 10x as long as it took.
SLOW_DISCOVERY_SECONDS = 0.05
HISTORY_SECONDS = 10.0
SLOW_HISTORY_SECONDS = 0.05
INCIDENTS_SECONDS = 1.0
PEER_TIMEOUT_SECONDS = 2.0
TOP_CATEGORIES = 5
# A queue page polls GetQueue every few seconds; its priorities and locks are read at most this often.
LOAD_SECONDS = 2.0

T = TypeVar("T")


class Shared(Generic[T]):
    """A value recomputed at most every `max_age` seconds; concurrent callers share one computation.

    With `slow_after` set, once computing took longer than that, a caller finding the value old gets it
    at once while one refresh runs in the background, and the value is kept ten times as long as it
    took: for values usually quick but sometimes slow to compute (discovery SCANs the whole Redis: a
    few milliseconds on most instances, about a second on one keeping a million finished jobs).
    """

    def __init__(
        self,
        compute: Callable[[], Awaitable[T]],
        max_age: float,
        clock: Callable[[], float],
        *,
        slow_after: float | None = None,
    ) -> None:
        self._compute = compute
        self._max_age = max_age
        self._clock = clock
        self._slow_after = slow_after
        self._value: T | None = None
        self._at = float("-inf")
        self._took = 0.0
        self._running: asyncio.Future[T] | None = None

    @property
    def _slow(self) -> bool:
        return self._slow_after is not None and self._took > self._slow_after

    def invalidate(self) -> None:
        """Make the next get() recompute (after an action changed what the value shows)."""
        self._at = float("-inf")

    async def get(self) -> T:
        """The value, recomputed if older than max_age (served stale meanwhile when computing is slow)."""
        max_age = max(self._max_age, 10 * self._took) if self._slow else self._max_age
        if self._value is not None and self._clock() - self._at < max_age:
            return self._value
        stale_ok = self._slow and self._value is not None
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh())
            # A background refresh may have nobody awaiting it: retrieve its failure so none is lost.
            self._running.add_done_callback(lambda f: f.cancelled() or f.exception())
        if stale_ok and self._value is not None:
            return self._value
        # shield: one caller giving up (deadline, disconnect) must not cancel the others' computation.
        return await asyncio.shield(self._running)

    async def fresh(self) -> T:
        """A freshly computed value (joining a refresh already in flight rather than starting a second)."""
        self.invalidate()
        if self._running is None:
            self._running = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._running)

    async def _refresh(self) -> T:
        started = self._clock()
        try:
            value = await self._compute()
            self._value, self._at = value, started
            self._took = self._clock() - started
            return value
        finally:
            self._running = None


@dataclass(frozen=True)
class History:
    """The collector's per-queue summaries, or nothing when it could not be asked."""

    summaries: dict[str, col_pb.QueueSummary] = field(default_factory=dict)
    reply: col_pb.SummarizeQueuesResponse | None = None
    # Per queue, a Queue message holding only the metric fields: built once per history reading and
    # merged into every live reading's message (a C++ merge, not a dozen Python field copies per queue).
    metrics: dict[str, pb.Queue] = field(default_factory=dict)


@dataclass(frozen=True)
class Reading:
    """One live reading of every queue, already in API form."""

    queues: list[pb.Queue]
    by_name: dict[str, pb.Queue]
    overview: pb.GetOverviewResponse


def _counts_message(c: HasCounts) -> pb.JobCounts:
    """The JobCounts message of a queue's state or a total (attribute by attribute: the board builds
    one per queue on every reading)."""
    return pb.JobCounts(
        waiting=c.waiting,
        active=c.active,
        delayed=c.delayed,
        prioritized=c.prioritized,
        waiting_children=c.waiting_children,
        completed=c.completed,
        failed=c.failed,
    )


def _fill_limits(queue: pb.Queue, limits: QueueLimits) -> None:
    """The rate limit and global concurrency fields of a queue's message (left unset when none)."""
    rate = limits.rate_limit
    if rate is not None:
        queue.rate_limit.limited = rate.limited
        queue.rate_limit.window_count = rate.window_count
        queue.rate_limit.manual = rate.manual
        if rate.resets_in_ms is not None:
            queue.rate_limit.resets_in_ms = rate.resets_in_ms
        if rate.max is not None:
            queue.rate_limit.max = rate.max
        if rate.duration_ms is not None:
            queue.rate_limit.duration_ms = rate.duration_ms
    concurrency = limits.concurrency
    if concurrency is not None:
        queue.global_concurrency.limit = concurrency.limit
        queue.global_concurrency.running = concurrency.running
        queue.global_concurrency.maxed = concurrency.maxed


def success_rate(completed: int, failed: int) -> float | None:
    """completed / (completed + failed), or None when nothing finished."""
    finished = completed + failed
    return completed / finished if finished else None


class Board:
    """Live queue list and overview for MonitorService."""

    def __init__(
        self,
        backend: BullMQBackend,
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        collector: Peer[col_grpc.CollectorServiceStub],
        *,
        incidents: Peer[inc_grpc.IncidentServiceStub] | None = None,
        backlog_threshold: int = 200,
        backlog_thresholds: dict[str, int] | None = None,
        display_names: dict[str, str] | None = None,
        live_max_age: float = 1.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backend = backend
        self.heartbeat = heartbeat
        self.collector = collector
        self.incidents = incidents
        self.backlog_threshold = backlog_threshold
        self.backlog_thresholds = backlog_thresholds or {}
        self.display_names = display_names or {}
        self.clock = clock
        self._names: Shared[list[str]] = Shared(
            backend.discover, DISCOVERY_SECONDS, monotonic, slow_after=SLOW_DISCOVERY_SECONDS
        )
        self._history: Shared[History] = Shared(
            self._read_history, HISTORY_SECONDS, monotonic, slow_after=SLOW_HISTORY_SECONDS
        )
        self._reading: Shared[Reading] = Shared(self._read, live_max_age, monotonic)
        # Open incidents change when a rule fires, not with every count: even a board reading Redis
        # for every call (live_max_age 0) asks IncidentService at most once a second.
        self._incidents: Shared[list[pb.ActiveIncident]] = Shared(
            self._open_incidents, max(live_max_age, INCIDENTS_SECONDS), monotonic
        )
        self.limit_reader = LimitReader(backend.redis, backend.prefix)
        self._loads: dict[str, Shared[QueueLoad]] = {}
        self._monotonic = monotonic
        self._history_outage = Outage("collector_summary")
        self._heartbeat_outage = Outage("worker_summary")
        self._incidents_outage = Outage("open_incidents")

    def invalidate(self) -> None:
        """Forget the live reading (an action just changed a queue)."""
        self._reading.invalidate()

    async def refresh(self) -> None:
        """Re-read the queue list and the history now, and forget the live reading."""
        await asyncio.gather(self._names.fresh(), self._history.fresh())
        self._reading.invalidate()

    async def reading(self) -> Reading:
        """The current reading (at most live_max_age old)."""
        return await self._reading.get()

    async def queue(self, name: str) -> pb.Queue:
        """One queue from the current reading; NOT_FOUND when no such queue exists."""
        found = (await self.reading()).by_name.get(name)
        if found is None:
            # A queue created since the last discovery is still a queue: look at it directly.
            state = (await self.backend.states([name], int(self.clock() * 1000)))[name]
            if not state.exists:
                raise NotFound(f"queue {name!r} does not exist", reason="QUEUE_NOT_FOUND")
            await self._names.fresh()
            self._reading.invalidate()
            found = (await self.reading()).by_name.get(name)
            if found is None:
                raise NotFound(f"queue {name!r} does not exist", reason="QUEUE_NOT_FOUND")
        return found

    async def queue_in_full(self, name: str) -> pb.Queue:
        """One queue as `queue` gives it, with its priorities and stall candidates (GetQueue)."""
        found = await self.queue(name)
        shared = self._loads.get(name)
        if shared is None:
            # Bounded by the queues that exist (queue() said this one does); a removed queue's entry
            # is dropped when the board is read without it.
            shared = self._loads[name] = Shared(
                lambda: self.limit_reader.load(name), LOAD_SECONDS, self._monotonic
            )
        load = await shared.get()
        full = pb.Queue()
        full.CopyFrom(found)
        full.priorities.truncated = load.priorities.truncated
        full.priorities.levels.extend(
            pb.PriorityCount(priority=p, count=n) for p, n in load.priorities.levels
        )
        full.stalled.candidates = load.stalled.candidates
        full.stalled.examined = load.stalled.examined
        full.stalled.marked = load.stalled.marked
        return full

    async def exists(self, name: str) -> bool:
        """Whether the queue has any keys in Redis."""
        state = (await self.backend.states([name], int(self.clock() * 1000)))[name]
        return state.exists

    # -- readings --------------------------------------------------------------------------------

    async def _read_history(self) -> History:
        try:
            reply = await self.collector.stub.SummarizeQueues(
                col_pb.SummarizeQueuesRequest(), timeout=PEER_TIMEOUT_SECONDS
            )
        except Exception as exc:
            # The board still shows live counts without history; the outage is logged once.
            self._history_outage.failed(exc)
            return History()
        self._history_outage.ok()
        metrics = {}
        for summary in reply.summaries:
            metrics[summary.queue] = queue = pb.Queue()
            self._fill_metrics(queue, summary)
        return History({s.queue: s for s in reply.summaries}, reply, metrics)

    async def _online(self) -> hb_pb.GetWorkerSummaryResponse | None:
        try:
            reply: hb_pb.GetWorkerSummaryResponse = await self.heartbeat.stub.GetWorkerSummary(
                hb_pb.GetWorkerSummaryRequest(), timeout=PEER_TIMEOUT_SECONDS
            )
        except Exception as exc:
            self._heartbeat_outage.failed(exc)
            return None
        self._heartbeat_outage.ok()
        return reply

    async def _open_incidents(self) -> list[pb.ActiveIncident]:
        if self.incidents is None:
            return []
        try:
            reply = await self.incidents.stub.ListIncidents(
                inc_pb.ListIncidentsRequest(open_only=True, page_size=200), timeout=PEER_TIMEOUT_SECONDS
            )
        except Exception as exc:
            self._incidents_outage.failed(exc)
            return []
        self._incidents_outage.ok()
        # Pending conditions have not fired yet: the overview shows only what pages people.
        return [
            pb.ActiveIncident(
                incident_id=str(i.id),
                type=inc_pb.IncidentType.Name(i.type).removeprefix("INCIDENT_TYPE_"),
                severity=inc_pb.Severity.Name(i.severity).removeprefix("SEVERITY_").lower(),
                title=i.title,
                queue=i.queue,
                start_time=i.start_time,
            )
            for i in reply.incidents
            if i.status != inc_pb.INCIDENT_STATUS_PENDING
        ]

    async def _read(self) -> Reading:
        names = await self._names.get()
        now_ms = int(self.clock() * 1000)
        states, limits, workers, history, incidents = await asyncio.gather(
            self.backend.states(names, now_ms),
            self.limit_reader.limits(names),
            self._online(),
            self._history.get(),
            self._incidents.get(),
        )
        online = {q.queue: q.online for q in workers.queues} if workers is not None else None
        queues = [
            self._queue(states[name], online, history.metrics.get(name), limits.get(name))
            for name in names
            if states[name].exists
        ]
        for gone in self._loads.keys() - {q.name for q in queues}:
            del self._loads[gone]
        overview = self._overview(queues, workers, history)
        overview.active_incidents.extend(incidents)
        return Reading(queues, {q.name: q for q in queues}, overview)

    def _queue(
        self,
        state: QueueState,
        online: dict[str, int] | None,
        metrics: pb.Queue | None,
        limits: QueueLimits | None = None,
    ) -> pb.Queue:
        queue = pb.Queue(
            name=state.name,
            display_name=self.display_names.get(state.name, state.name),
            counts=_counts_message(state),
            paused=state.paused,
        )
        workers = online.get(state.name, 0) if online is not None else None
        if workers is not None:
            queue.online_workers = workers
        if metrics is not None:
            queue.MergeFrom(metrics)
        if limits is not None:
            _fill_limits(queue, limits)
        queue.status, queue.status_reason = self._status(state, workers)
        return queue

    @staticmethod
    def _fill_metrics(queue: pb.Queue, summary: col_pb.QueueSummary) -> None:
        if summary.HasField("latest"):
            latest = summary.latest
            queue.metrics_minute_time.CopyFrom(latest.minute_time)
            queue.jobs_per_minute = latest.completed_in_minute
            queue.failures_per_minute = latest.failed_in_minute
            if latest.HasField("processing"):
                queue.processing.CopyFrom(recast(latest.processing, pb.Durations))
            if latest.HasField("wait"):
                queue.wait.CopyFrom(recast(latest.wait, pb.Durations))
            if latest.HasField("oldest_waiting_ms"):
                queue.latency_ms = latest.oldest_waiting_ms
        top = sorted(summary.failures_by_category_1h.items(), key=lambda item: (-item[1], item[0]))
        queue.top_failure_categories.extend(
            pb.CategoryCount(category=c, count=n) for c, n in top[:TOP_CATEGORIES]
        )
        queue.completed_24h = summary.completed_24h
        queue.failed_24h = summary.failed_24h
        rate = success_rate(summary.completed_24h, summary.failed_24h)
        if rate is not None:
            queue.success_rate_24h = rate

    def _status(self, state: QueueState, online: int | None) -> tuple[pb.QueueStatus.ValueType, str]:
        if state.problem:
            # Keys BullMQ did not write: its counts are partial, whatever else holds.
            return pb.QUEUE_STATUS_DEGRADED, state.problem
        if state.paused:
            return pb.QUEUE_STATUS_PAUSED, ""
        waiting = state.waiting + state.prioritized
        threshold = self.backlog_thresholds.get(state.name, self.backlog_threshold)
        if waiting > threshold:
            return (
                pb.QUEUE_STATUS_DEGRADED,
                f"{waiting} jobs waiting, above the backlog threshold of {threshold}",
            )
        # Only instrumented workers are counted, so "no online worker" is only said where some reported.
        if waiting and online == 0 and state.active == 0:
            return pb.QUEUE_STATUS_DEGRADED, f"{waiting} jobs waiting and no online worker"
        if waiting + state.active + state.delayed + state.waiting_children == 0:
            return pb.QUEUE_STATUS_IDLE, ""
        return pb.QUEUE_STATUS_RUNNING, ""

    @staticmethod
    def _overview(
        queues: Sequence[pb.Queue], workers: hb_pb.GetWorkerSummaryResponse | None, history: History
    ) -> pb.GetOverviewResponse:
        overview = pb.GetOverviewResponse(queues_total=len(queues))
        total = JobCounts()
        for queue in queues:
            total.add(queue.counts)
            if queue.paused:
                overview.paused_queues.append(queue.name)
            if queue.status == pb.QUEUE_STATUS_DEGRADED:
                overview.degraded_queues.append(queue.name)
        overview.counts.CopyFrom(_counts_message(total))
        if workers is not None:
            overview.workers_online = workers.online
            overview.workers_offline = workers.offline
        reply = history.reply
        if reply is not None:
            newest = reply.minute_time if reply.HasField("minute_time") else None
            for summary in history.summaries.values():
                overview.completed_24h += summary.completed_24h
                overview.failed_24h += summary.failed_24h
                latest = summary.latest
                # Per-minute figures count the newest minute only: a queue whose last row is older
                # did nothing measurable in it.
                if summary.HasField("latest") and newest is not None and latest.minute_time == newest:
                    overview.jobs_per_minute += latest.completed_in_minute
                    overview.failures_per_minute += latest.failed_in_minute
            rate = success_rate(overview.completed_24h, overview.failed_24h)
            if rate is not None:
                overview.success_rate_24h = rate
            if reply.HasField("processing_15m") and reply.processing_15m.samples:
                overview.processing_p95_ms_15m = reply.processing_15m.p95_ms
            if newest is not None:
                overview.metrics_minute_time.CopyFrom(newest)
        return overview
