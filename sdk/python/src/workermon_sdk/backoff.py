"""Retry timing for reconnecting to the heartbeat service."""

from __future__ import annotations

import random
from dataclasses import dataclass

_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter.

    Every delay is drawn uniformly from ``[0, min(cap, base * 2**attempt)]`` so that a fleet of workers
    that lost the service at the same moment does not come back at the same moment. The cap is low (5 s)
    because a worker that is not beating looks down: when the connection itself was lost the client
    does not even wait that long, it retries as soon as the channel is READY again.
    """

    base: float = 0.5
    cap: float = 5.0

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise ValueError(f"backoff base must be positive, got {self.base}")
        if self.cap < self.base:
            raise ValueError(f"backoff cap ({self.cap}) must not be below its base ({self.base})")

    def ceiling(self, attempt: int) -> float:
        """Return the largest delay allowed after ``attempt`` consecutive failures (0-based)."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))

    def delay(self, attempt: int, rng: random.Random | None = None, at_most: float | None = None) -> float:
        """Return a random delay in ``[0, ceiling(attempt)]``, the window narrowed to ``at_most``."""
        ceiling = self.ceiling(attempt)
        return (rng or _rng).uniform(0.0, ceiling if at_most is None else min(ceiling, at_most))


_rng = random.Random()
