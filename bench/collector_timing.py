"""Phases of a collection cycle, timed from outside: the collector gets wrapped collaborators.

`Collector._collect` follows the event streams, then reads queue states, minute counters and finished
jobs (concurrently), builds the rows and writes them. Each wrapped call records its (start, end), so a
phase's span is measured on the very cycle being timed; the wrappers add one `perf_counter` pair per
call (about a microsecond). The additive breakdown is follow | reads | rows | write | other, where
`reads` is the span covering the three reads however they overlap; each read's own span is kept too.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import psutil
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_collector.follower import EventFollower, MinuteCounts
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_queues.backend import EventBatch, FinishedJob, QueueBackend, QueueState
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.classify import FailureClassifier

# The cycle's parts, in order, adding up to its wall time ("rows" and "other" come from the gaps).
PHASES = ("follow", "reads", "rows", "write", "other")
# The reads inside "reads", each with its own span (they may overlap one another).
READS = ("states", "counters", "durations")


@dataclass
class PhaseClock:
    """(start, end) of every wrapped call of the current cycle, by phase, and what the calls returned."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    events: int = 0
    finished_jobs: int = 0

    def reset(self) -> None:
        self.spans = {}
        self.events = 0
        self.finished_jobs = 0

    def record(self, phase: str, start: float, end: float) -> None:
        self.spans.setdefault(phase, []).append((start, end))

    def span(self, *phases: str) -> tuple[float, float] | None:
        """From the first start to the last end of the calls of the phases."""
        calls = [call for phase in phases for call in self.spans.get(phase, [])]
        if not calls:
            return None
        return min(s for s, _ in calls), max(e for _, e in calls)

    def seconds(self, *phases: str) -> float:
        bounds = self.span(*phases)
        return bounds[1] - bounds[0] if bounds else 0.0

    def breakdown_ms(self, wall_s: float) -> dict[str, float]:
        """Milliseconds per phase of one cycle that took `wall_s` in all (the values add up to it)."""
        reads, write = self.span(*READS), self.span("write")
        ms = {
            "follow": 1000.0 * self.seconds("follow"),
            "reads": 1000.0 * self.seconds(*READS),
            # From the last read to the write: sketches and SnapshotRows for every queue.
            "rows": 1000.0 * (write[0] - reads[1]) if reads and write else 0.0,
            "write": 1000.0 * self.seconds("write"),
        }
        ms["other"] = max(0.0, 1000.0 * wall_s - sum(ms.values()))
        return {name: ms[name] for name in PHASES}

    def reads_ms(self) -> dict[str, float]:
        """Each read's own span in milliseconds (overlapping: they need not add up to `reads`)."""
        return {name: 1000.0 * self.seconds(name) for name in READS}


class TimedBackend:
    """A QueueBackend that times `states` and the finished-job reads of the BullMQ backend it wraps."""

    def __init__(self, inner: BullMQBackend, clock: PhaseClock) -> None:
        self.inner = inner
        self.clock = clock

    async def discover(self) -> list[str]:
        return await self.inner.discover()

    async def states(self, names: Sequence[str], now_ms: int) -> dict[str, QueueState]:
        start = time.perf_counter()
        try:
            return await self.inner.states(names, now_ms)
        finally:
            self.clock.record("states", start, time.perf_counter())

    async def read_events(self, queue: str, after: str | None, count: int = 1000) -> EventBatch:
        return await self.inner.read_events(queue, after, count)

    async def read_events_many(
        self, cursors: Mapping[str, str | None], count: int = 1000
    ) -> dict[str, EventBatch]:
        return await self.inner.read_events_many(cursors, count)

    async def finished_between(
        self, queue: str, start_ms: int, end_ms: int, limit: int = 10_000
    ) -> list[FinishedJob]:
        start = time.perf_counter()
        try:
            jobs = await self.inner.finished_between(queue, start_ms, end_ms, limit)
        finally:
            self.clock.record("durations", start, time.perf_counter())
        self.clock.finished_jobs += len(jobs)
        return jobs

    async def finished_between_many(
        self, queues: Sequence[str], start_ms: int, end_ms: int, limit: int = 10_000
    ) -> dict[str, list[FinishedJob]]:
        start = time.perf_counter()
        try:
            found = await self.inner.finished_between_many(queues, start_ms, end_ms, limit)
        finally:
            self.clock.record("durations", start, time.perf_counter())
        self.clock.finished_jobs += sum(len(jobs) for jobs in found.values())
        return found

    async def latest_event_id(self, queue: str) -> str | None:
        return await self.inner.latest_event_id(queue)


class TimedFollower(EventFollower):
    """The event follower, with `follow_many` (stream reads and counter updates) and `minutes` timed."""

    def __init__(
        self,
        backend: QueueBackend,
        redis: aioredis.Redis,
        prefix: str,
        classifier: FailureClassifier,
        clock: PhaseClock,
    ) -> None:
        super().__init__(backend, redis, prefix, classifier)
        self.clock = clock

    async def follow_many(self, queues: Sequence[str], now_ms: int) -> dict[str, int]:
        start = time.perf_counter()
        try:
            applied = await super().follow_many(queues, now_ms)
        finally:
            self.clock.record("follow", start, time.perf_counter())
        self.clock.events += sum(applied.values())
        return applied

    async def minutes(self, queues: Sequence[str], minute_ms: int) -> dict[str, MinuteCounts]:
        start = time.perf_counter()
        try:
            return await super().minutes(queues, minute_ms)
        finally:
            self.clock.record("counters", start, time.perf_counter())


class TimedStore(SnapshotStore):
    """The snapshot store, with `write` timed."""

    def __init__(self, engine: AsyncEngine, clock: PhaseClock) -> None:
        super().__init__(engine)
        self.clock = clock

    async def write(self, rows: Sequence[SnapshotRow]) -> list[bool]:
        start = time.perf_counter()
        try:
            return await super().write(rows)
        finally:
            self.clock.record("write", start, time.perf_counter())


class GcWatch:
    """Python's garbage collections (count and time, by generation) while the context is open.

    A full (generation 2) collection walks every tracked object of the process; it pauses whatever
    call is running, which is what shows in tail latencies.
    """

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self.collections[generation] += 1
        self.seconds[generation] += time.perf_counter() - self._started

    def to_dict(self) -> dict[str, float]:
        return {
            "gc_collections": sum(self.collections),
            "gc_ms": 1000.0 * sum(self.seconds),
            "gc_full_collections": self.collections[2],
            "gc_full_ms": 1000.0 * self.seconds[2],
        }


@dataclass(frozen=True, slots=True)
class MachineSample:
    """CPU seconds of all cores together: busy (not idle or iowait) and in all."""

    busy_s: float
    total_s: float

    def busy_pct_since(self, earlier: MachineSample) -> float:
        """Share of all cores busy between `earlier` and this sample (anything running: us or others)."""
        return 100.0 * ratio(self.busy_s - earlier.busy_s, self.total_s - earlier.total_s)


def machine_sample() -> MachineSample:
    times = psutil.cpu_times()
    total = sum(times)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return MachineSample(busy_s=total - idle, total_s=total)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """calls, p50/p99/max in ms, and the mean rate of back-to-back calls."""
    ms = [1000.0 * s for s in seconds]
    total = sum(seconds)
    return {
        "calls": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms, default=0.0),
        "mean_ms": statistics.fmean(ms) if ms else 0.0,
        "calls_per_s": len(ms) / total if total else 0.0,
    }
