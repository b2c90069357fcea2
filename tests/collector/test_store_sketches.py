"""Sketch helpers: byte form round trips, exact merges, quantiles identical to ddsketch's own."""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable

import pytest
from ddsketch import DDSketch

from workermon_collector import sketches
from workermon_collector.sketches import SketchError


def _sketch(values: list[float]) -> DDSketch:
    sketch = sketches.new_sketch()
    for value in values:
        sketch.add(value)
    return sketch


DISTRIBUTIONS: dict[str, Callable[[random.Random], list[float]]] = {
    "lognormal": lambda rng: [rng.lognormvariate(5, 1.5) for _ in range(rng.randint(1, 3000))],
    "with_zeros": lambda rng: [0.0] * 7 + [rng.expovariate(0.01) for _ in range(200)],
    "one_value": lambda rng: [123.456],
    "signed": lambda rng: [rng.gauss(0, 100) for _ in range(500)],
    "wide": lambda rng: [10 ** rng.uniform(-3, 8) for _ in range(1000)],
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_round_trip_and_quantiles_match_ddsketch(name: str) -> None:
    rng = random.Random(name)
    values = DISTRIBUTIONS[name](rng)
    original = _sketch(values)
    restored = sketches.deserialize(sketches.serialize(original))
    assert restored.count == original.count
    assert restored.sum == pytest.approx(original.sum)
    assert restored.avg == pytest.approx(original.avg)
    low, high = min(values), max(values)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        assert restored.get_quantile_value(q) == original.get_quantile_value(q)
    summary = sketches.summarize(original)
    assert summary is not None
    for got, q in ((summary.p50_ms, 0.5), (summary.p95_ms, 0.95), (summary.p99_ms, 0.99)):
        # ddsketch's answer, clamped to the exact min/max.
        expected = original.get_quantile_value(q)
        assert expected is not None
        assert got == min(max(expected, low), high)
        # ...within 1% of the sample at that rank.
        truth = sorted(values)[math.floor(q * (len(values) - 1))]
        assert abs(got - truth) <= 0.01 * abs(truth) + 1e-12
    assert summary.samples == len(values)
    assert summary.avg_ms == pytest.approx(sum(values) / len(values))


def test_merge_equals_ddsketch_merge() -> None:
    rng = random.Random(5)
    parts = [[rng.lognormvariate(4, 1) for _ in range(rng.randint(0, 300))] for _ in range(40)]
    reference = sketches.new_sketch()
    for part in parts:
        reference.merge(_sketch(part))
    blobs = [sketches.serialize(_sketch(part)) for part in parts] + [b""]
    merged = sketches.merge(blobs)
    assert merged.count == reference.count
    assert merged.sum == pytest.approx(reference.sum)
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        assert merged.get_quantile_value(q) == reference.get_quantile_value(q)
    fast = sketches.summarize_merged(blobs)
    slow = sketches.summarize(reference)
    assert fast is not None and slow is not None
    assert (fast.samples, fast.p50_ms, fast.p95_ms, fast.p99_ms) == (
        slow.samples,
        slow.p50_ms,
        slow.p95_ms,
        slow.p99_ms,
    )
    assert fast.avg_ms == pytest.approx(slow.avg_ms)
    assert sketches.deserialize(fast.sketch).count == reference.count
    assert sketches.summarize_merged(blobs, keep_sketch=False).sketch == b""  # type: ignore[union-attr]


def test_empty_sketches() -> None:
    assert sketches.summarize(sketches.new_sketch()) is None
    assert sketches.summarize_merged([]) is None
    assert sketches.summarize_merged([b"", sketches.serialize(sketches.new_sketch())]) is None
    assert sketches.deserialize(sketches.serialize(sketches.new_sketch())).count == 0
    # An empty sketch merged with another changes nothing, min and max included.
    one = sketches.serialize(_sketch([50.0, 70.0]))
    summary = sketches.summarize_merged([sketches.serialize(sketches.new_sketch()), one])
    assert summary is not None and summary.p50_ms == 50.0 and summary.samples == 2


def test_weighted_counts_survive() -> None:
    sketch = sketches.new_sketch()
    sketch.add(10.0, weight=0.5)
    sketch.add(20.0, weight=2.25)
    restored = sketches.deserialize(sketches.serialize(sketch))
    assert restored.count == pytest.approx(2.75)
    assert restored.get_quantile_value(0.9) == sketch.get_quantile_value(0.9)


def test_compact() -> None:
    rng = random.Random(1)
    blob = sketches.serialize(_sketch([rng.lognormvariate(5, 1.2) for _ in range(200)]))
    assert len(blob) < 600


@pytest.mark.parametrize(
    "blob",
    [b"", b"\x02" + bytes(60), b"garbage", sketches.serialize(_sketch([1.0, 2.0]))[:-3]],
)
def test_foreign_bytes_are_refused(blob: bytes) -> None:
    with pytest.raises(SketchError):
        sketches.deserialize(blob)


def test_other_accuracy_is_refused() -> None:
    other = DDSketch(0.02)
    other.add(5.0)
    # Build the byte form of a 2% sketch by hand through the private path.
    data = sketches._Bins.from_sketch(other).to_bytes()
    patched = data[:1] + struct.pack("<d", other._mapping.gamma) + data[9:]
    with pytest.raises(SketchError, match="gamma"):
        sketches.deserialize(patched)
