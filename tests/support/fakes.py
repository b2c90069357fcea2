"""A clock tests move by hand, and the token secret of test suites."""

from __future__ import annotations

TEST_SECRET = "test-secret-" + "x" * 40


class FakeClock:
    """A clock tests move by hand (seconds since the epoch)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
