"""Clocks tests move by hand, and the token secret of test suites."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

TEST_SECRET = "test-secret-" + "x" * 40


class FakeClock:
    """A clock tests move by hand (seconds since the epoch)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


FIXED_NOW = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)
"""A fixed "now" for tests that need one: a Tuesday, 10:30 UTC."""


@dataclass
class DateClock:
    """A datetime clock tests set or move by hand (aware UTC)."""

    now: datetime = FIXED_NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta
