"""Durations of the jobs a worker finishes, per queue and minute, as mergeable DDSketch bins.

A job removed on completion leaves no timestamps in Redis, so only the worker that ran it can say how
long it took. The worker keeps one small sketch (bins of a 1 %-accurate logarithmic mapping) per queue
and minute, sends them with its beats, and forgets them once the service has answered a beat carrying
them; if the service is down they wait, bounded, and go with a later beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ddsketch.mapping import LogarithmicMapping

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb2

RELATIVE_ACCURACY = 0.01
MINUTE_MS = 60_000
MAX_ENTRIES = 64
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


@dataclass
class _Sketch:
    count: float = 0.0
    total: float = 0.0
    low: float = float("inf")
    high: float = 0.0
    zero: float = 0.0
    bins: dict[int, float] = field(default_factory=dict)

    def add(self, value: float) -> None:
        value = max(value, 0.0)
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        if value <= _MAPPING.min_possible:
            self.zero += 1
        else:
            key = int(_MAPPING.key(value))
            self.bins[key] = self.bins.get(key, 0.0) + 1

    def merge(self, other: _Sketch) -> None:
        self.count += other.count
        self.total += other.total
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.zero += other.zero
        for key, n in other.bins.items():
            self.bins[key] = self.bins.get(key, 0.0) + n

    def message(self) -> hb_pb2.DurationSketch:
        return hb_pb2.DurationSketch(
            gamma=_MAPPING.gamma,
            count=self.count,
            sum=self.total,
            min=0.0 if self.count == 0 else self.low,
            max=self.high,
            zero_count=self.zero,
            bins=self.bins,
        )


@dataclass
class _Entry:
    processing: _Sketch = field(default_factory=_Sketch)
    wait: _Sketch = field(default_factory=_Sketch)

    def merge(self, other: _Entry) -> None:
        self.processing.merge(other.processing)
        self.wait.merge(other.wait)


class TimingRecorder:
    """Per-(queue, minute) sketches of finished jobs, kept until a beat carrying them is answered."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._open: dict[tuple[str, int], _Entry] = {}
        self._in_flight: dict[tuple[str, int], _Entry] = {}
        self._max = max_entries

    def record(self, queue: str, finished_ms: int, processing_ms: float, wait_ms: float | None) -> None:
        """Count one finished job (completed or failed attempt)."""
        key = (queue, finished_ms - finished_ms % MINUTE_MS)
        entry = self._open.setdefault(key, _Entry())
        entry.processing.add(processing_ms)
        if wait_ms is not None:
            entry.wait.add(wait_ms)
        self._bound(self._open)

    def outgoing(self) -> list[hb_pb2.JobTimings]:
        """Everything not yet confirmed, as messages for the next beat (it is now in flight)."""
        for key, entry in self._open.items():
            if key in self._in_flight:
                self._in_flight[key].merge(entry)
            else:
                self._in_flight[key] = entry
        self._open = {}
        self._bound(self._in_flight)
        messages = []
        for (queue, minute), entry in sorted(self._in_flight.items(), key=lambda item: item[0][1]):
            message = hb_pb2.JobTimings(
                queue=queue, processing=entry.processing.message(), wait=entry.wait.message()
            )
            message.minute_time.FromMilliseconds(minute)
            messages.append(message)
        return messages

    def confirm(self) -> None:
        """The service answered a beat carrying the in-flight timings: they are delivered."""
        self._in_flight = {}

    @property
    def pending(self) -> int:
        """Entries waiting to be delivered."""
        return len(self._open) + len(self._in_flight)

    def _bound(self, entries: dict[tuple[str, int], _Entry]) -> None:
        # Oldest minutes go first: bounded memory matters more than a stale minute's durations.
        while len(entries) > self._max:
            del entries[min(entries, key=lambda k: k[1])]
