"""The suite's one retry policy: how long a loop that talks to Redis, a database or a peer waits after
consecutive failures (the `Outage` tracker in server.py applies it, with its one-line-per-outage logs).

The Python SDK has the same idea in `workermon_sdk.Backoff` (it cannot depend on this package); the SDK
uses full jitter for a fleet of workers, the services use equal jitter, below.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter, capped.

    After `failures` consecutive failures the ceiling is `min(cap, base * 2**(failures - 1))`, and the
    delay is drawn from `[ceiling / 2, ceiling]`: replicas that lost Redis together do not come back in
    step, and a loop never retries faster than half its ceiling (what full jitter, drawing from 0,
    would allow). The defaults (0.5 s doubling to 10 s) make a 10 s outage cost about six tries.
    """

    base: float = 0.5
    cap: float = 10.0

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise ValueError(f"backoff base must be positive, got {self.base}")
        if self.cap < self.base:
            raise ValueError(f"backoff cap ({self.cap}) must not be below its base ({self.base})")

    def ceiling(self, failures: int) -> float:
        """The longest wait after `failures` consecutive failures (0 after none)."""
        if failures <= 0:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - 1, _MAX_EXPONENT))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        """A random wait in `[ceiling / 2, ceiling]` after `failures` consecutive failures."""
        ceiling = self.ceiling(failures)
        return (rng or _rng).uniform(ceiling / 2, ceiling)


BACKOFF = Backoff()
"""The policy every loop of the suite uses unless told otherwise."""

_rng = random.Random()
