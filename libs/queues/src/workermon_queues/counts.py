"""The count vocabulary: the states a queue's jobs are counted in, spelled once for every service.

API messages (`JobCounts`), the collector's columns, the board and the metrics all list these states,
in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["COUNT_FIELDS", "HasCounts", "JobCounts"]

COUNT_FIELDS: tuple[str, ...] = (
    "waiting",
    "active",
    "delayed",
    "prioritized",
    "waiting_children",
    "completed",
    "failed",
)


class HasCounts(Protocol):
    """Anything with a count per state: a queue state, a row, a JobCounts message."""

    # Read-only properties, so that frozen dataclasses and messages qualify.
    @property
    def waiting(self) -> int: ...
    @property
    def active(self) -> int: ...
    @property
    def delayed(self) -> int: ...
    @property
    def prioritized(self) -> int: ...
    @property
    def waiting_children(self) -> int: ...
    @property
    def completed(self) -> int: ...
    @property
    def failed(self) -> int: ...


@dataclass(slots=True)
class JobCounts:
    """Jobs per state at one moment.

    Not frozen only because frozen dataclasses cost several times as much to build and a day of
    history builds thousands of them; treat it as a value.
    """

    waiting: int = 0
    active: int = 0
    delayed: int = 0
    prioritized: int = 0
    waiting_children: int = 0
    completed: int = 0
    failed: int = 0

    @classmethod
    def of(cls, source: object) -> JobCounts:
        """The counts of anything that has an attribute per state (a queue state, a row, a message)."""
        return cls(*(int(getattr(source, name)) for name in COUNT_FIELDS))

    def as_dict(self) -> dict[str, int]:
        """State name to count, in `COUNT_FIELDS` order (keyword arguments for a JobCounts message)."""
        return {name: getattr(self, name) for name in COUNT_FIELDS}

    def add(self, other: HasCounts) -> None:
        """Add the counts of anything with an attribute per state, in place (for running totals)."""
        self.waiting += other.waiting
        self.active += other.active
        self.delayed += other.delayed
        self.prioritized += other.prioritized
        self.waiting_children += other.waiting_children
        self.completed += other.completed
        self.failed += other.failed

    def __add__(self, other: JobCounts) -> JobCounts:
        return JobCounts(*(getattr(self, name) + getattr(other, name) for name in COUNT_FIELDS))
