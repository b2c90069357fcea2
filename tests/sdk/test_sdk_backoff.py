from __future__ import annotations

import random

import pytest

from workermon_sdk import Backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert [backoff.ceiling(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_ceiling_survives_absurd_attempt_counts() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    assert backoff.ceiling(10**9) == 30.0
    assert backoff.ceiling(-3) == 0.5


@pytest.mark.parametrize("attempt", [0, 1, 3, 6, 50])
def test_delays_stay_within_full_jitter_bounds(attempt: int) -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    rng = random.Random(7)
    ceiling = backoff.ceiling(attempt)
    delays = [backoff.delay(attempt, rng) for _ in range(2000)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter spreads over the whole window, not just its upper end.
    assert min(delays) < 0.05 * ceiling
    assert max(delays) > 0.95 * ceiling


def test_a_delay_can_be_held_below_the_ceiling() -> None:
    backoff = Backoff(base=0.5, cap=5.0)
    rng = random.Random(7)
    delays = [backoff.delay(6, rng, at_most=2.0) for _ in range(2000)]
    assert all(0.0 <= d <= 2.0 for d in delays)
    assert max(delays) > 1.9  # still spread over the whole narrowed window
    assert [backoff.delay(0, rng, at_most=2.0) <= 0.5 for _ in range(100)] == [True] * 100


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_rejects_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)
