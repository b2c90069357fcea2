"""The snapshot row as the collector builds it and the store keeps it (one per queue and minute)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SUMMARY_FIELDS: tuple[str, ...] = ("samples", "p50_ms", "p95_ms", "p99_ms", "avg_ms")
"""What a duration summary holds, in this order everywhere: the API's Durations, the `<kind>_<field>`
columns of the snapshot tables."""


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Percentiles of a DDSketch, in milliseconds; `sketch` is its serialized form (for exact merging),
    empty where only the figures are kept."""

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    sketch: bytes = b""

    def as_dict(self) -> dict[str, Any]:
        """The figures by `SUMMARY_FIELDS` name (keyword arguments for a Durations message)."""
        return {name: getattr(self, name) for name in SUMMARY_FIELDS}


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One queue in one minute. `minute` is timezone-aware UTC, at second 0."""

    queue: str
    minute: datetime
    waiting: int
    active: int
    delayed: int
    prioritized: int
    waiting_children: int
    completed: int
    failed: int
    paused: bool
    completed_in_minute: int
    failed_in_minute: int
    retried_in_minute: int
    counts_approximate: bool
    completed_cumulative: int
    failed_cumulative: int
    collected_at: datetime
    collection_ms: float
    processing: DurationSummary | None = None
    wait: DurationSummary | None = None
    duration_source: str = ""
    oldest_waiting_ms: int | None = None
    online_workers: int | None = None
    failures_by_category: dict[str, int] = field(default_factory=dict)
    counters_reset: bool = False
    stalled_in_minute: int = 0
