"""The snapshot row as the collector builds it and the store keeps it (one per queue and minute)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Percentiles of a DDSketch, in milliseconds; `sketch` is its serialized form (for exact merging)."""

    samples: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    avg_ms: float
    sketch: bytes


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
