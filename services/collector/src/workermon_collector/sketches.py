"""DDSketch helpers: one mapping for the whole suite, a compact byte form, exact merging, summaries.

Why our own byte form rather than ddsketch's protobuf (`ddsketch.pb.proto.DDSketchProto`): that message
has no sum, min or max (its `from_proto` says so), so the mean of merged sketches would be lost, and
it stores the dense bin array with its 128-bin padding (about 3 KB even for a handful of values).
Ours keeps sum/min/max and only the non-empty bins, about 200 bytes for a minute of a busy queue, and
decodes with C-speed array and zlib calls. Merging and quantiles work on plain bin dictionaries, not
ddsketch stores, because building a dense store costs ~0.5 us a bin and queries merge thousands of
sketches; the results match ddsketch's own `get_quantile_value` (tests hold them side by side).

Layout: a header `<B6dBII` (version, gamma, sum, min, max, zero count, reserved 0.0, flags, number of
positive bins, number of negative bins), then, when there are bins, one zlib stream of: positive keys,
negative keys (each as int32 deltas from the previous key, the first absolute), positive counts,
negative counts (uint32 when flags bit 0 says every count is an integer below 2**32, else float64).
All little-endian.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Any

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

from .rows import DurationSummary

RELATIVE_ACCURACY = 0.01
FORMAT_VERSION = 1

_HEADER = struct.Struct("<B6dBII")
_INTEGRAL = 0x01
_UINT32_LIMIT = 2**32
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
# Every sketch of the suite uses this gamma; bins of sketches with another gamma cannot be added.
GAMMA: float = _MAPPING.gamma
_QUANTILES = (0.50, 0.95, 0.99)


class SketchError(ValueError):
    """The bytes are not a sketch this module wrote, or the sketch uses another relative accuracy."""


def new_sketch() -> DDSketch:
    """An empty sketch with the suite's relative accuracy (1%)."""
    return DDSketch(RELATIVE_ACCURACY)


def _little_endian(values: array[Any]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover - every supported platform is little-endian
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _from_little_endian(typecode: str, data: bytes) -> array[Any]:
    values: array[Any] = array(typecode)
    values.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


def _deltas(keys: list[int]) -> list[int]:
    return [keys[0], *(b - a for a, b in pairwise(keys))] if keys else []


@dataclass(slots=True)
class _Bins:
    """A sketch as plain data: bin key -> count for positive and negative values, and exact stats."""

    positive: dict[int, float] = field(default_factory=dict)
    negative: dict[int, float] = field(default_factory=dict)
    zero: float = 0.0
    sum: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    @property
    def count(self) -> float:
        return sum(self.positive.values()) + sum(self.negative.values()) + self.zero

    @classmethod
    def from_sketch(cls, sketch: DDSketch) -> _Bins:
        bins = cls(zero=float(sketch._zero_count), sum=float(sketch.sum))
        for target, store in ((bins.positive, sketch._store), (bins.negative, sketch._negative_store)):
            if store.count:
                offset = store.offset
                target.update((i + offset, c) for i, c in enumerate(store.bins) if c)
        if sketch.count:
            bins.minimum, bins.maximum = float(sketch._min), float(sketch._max)
        return bins

    @classmethod
    def from_bytes(cls, data: bytes) -> _Bins:
        try:
            version, gamma, total, minimum, maximum, zero, _, flags, n_pos, n_neg = _HEADER.unpack_from(data)
        except struct.error as exc:
            raise SketchError("truncated sketch") from exc
        if version != FORMAT_VERSION:
            raise SketchError(f"unknown sketch format version {version}")
        if not math.isclose(gamma, GAMMA, rel_tol=1e-12):
            raise SketchError(f"sketch gamma {gamma} differs from the suite's {GAMMA}")
        bins = cls(zero=zero, sum=total, minimum=minimum, maximum=maximum)
        n = n_pos + n_neg
        if n:
            count_size = 4 if flags & _INTEGRAL else 8
            try:
                body = zlib.decompress(data[_HEADER.size :])
            except zlib.error as exc:
                raise SketchError("damaged sketch body") from exc
            if len(body) != n * (4 + count_size):
                raise SketchError("sketch body does not match its bin counts")
            keys = _from_little_endian("i", body[: 4 * n])
            counts = _from_little_endian("I" if count_size == 4 else "d", body[4 * n :])
            # Keys are stored as deltas per sign; a running sum restores them at C speed.
            if n_neg:
                bins.positive = dict(zip(accumulate(keys[:n_pos]), counts[:n_pos], strict=True))
                bins.negative = dict(zip(accumulate(keys[n_pos:]), counts[n_pos:], strict=True))
            else:
                bins.positive = dict(zip(accumulate(keys), counts, strict=True))
        elif len(data) != _HEADER.size:
            raise SketchError("trailing bytes after an empty sketch")
        if not n and not zero:
            # An empty sketch has no min/max; keep the neutral values so merging ignores it.
            bins.minimum, bins.maximum = math.inf, -math.inf
        return bins

    def to_bytes(self) -> bytes:
        pos_keys = sorted(self.positive)
        neg_keys = sorted(self.negative)
        counts = [self.positive[k] for k in pos_keys] + [self.negative[k] for k in neg_keys]
        integral = all(c.is_integer() and 0 <= c < _UINT32_LIMIT for c in map(float, counts))
        empty = not counts and not self.zero
        header = _HEADER.pack(
            FORMAT_VERSION,
            GAMMA,
            self.sum,
            0.0 if empty else self.minimum,
            0.0 if empty else self.maximum,
            self.zero,
            0.0,
            _INTEGRAL if integral else 0,
            len(pos_keys),
            len(neg_keys),
        )
        if not counts:
            return header
        keys = array("i", _deltas(pos_keys) + _deltas(neg_keys))
        values = array("I", [int(c) for c in counts]) if integral else array("d", counts)
        return header + zlib.compress(_little_endian(keys) + _little_endian(values), 1)

    def add(self, other: _Bins) -> None:
        for target, source in ((self.positive, other.positive), (self.negative, other.negative)):
            if not target:
                target.update(source)
                continue
            get = target.get
            for key, count in source.items():
                target[key] = get(key, 0.0) + count
        self.zero += other.zero
        self.sum += other.sum
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def to_sketch(self) -> DDSketch:
        sketch = new_sketch()
        for store, bins in ((sketch._store, self.positive), (sketch._negative_store, self.negative)):
            if not bins:
                continue
            keys = sorted(bins)
            # The extremes first size the dense store once instead of growing it chunk by chunk.
            order = [keys[0], keys[-1], *keys[1:-1]] if len(keys) > 1 else keys
            for key in order:
                store.add(key, bins[key])
        sketch._zero_count = self.zero
        sketch._count = sketch._store.count + sketch._negative_store.count + self.zero
        if sketch._count:
            sketch._sum, sketch._min, sketch._max = self.sum, self.minimum, self.maximum
        return sketch

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """ddsketch's `get_quantile_value` for each q, clamped to the exact min/max.

        The same walks as DenseStore.key_at_rank: lower=False over the negative store (reversed),
        lower=True over the positive one; positive ranks are resolved in one pass over the bins.
        """
        neg_count = sum(self.negative.values())
        count = neg_count + self.zero + sum(self.positive.values())
        values: dict[float, float] = {}
        positive_targets: list[tuple[float, float]] = []
        for q in qs:
            rank = q * (count - 1)
            if rank < neg_count:
                values[q] = -_MAPPING.value(self._negative_key(neg_count - rank - 1))
            elif rank < neg_count + self.zero:
                values[q] = 0.0
            else:
                positive_targets.append((rank - self.zero - neg_count, q))
        if positive_targets:
            values.update(self._positive_values(positive_targets))
        return [min(max(values[q], self.minimum), self.maximum) for q in qs]

    def _negative_key(self, reversed_rank: float) -> int:
        """The negative bin holding `reversed_rank`, counted from the smallest key."""
        running = 0.0
        neg_keys = sorted(self.negative)
        key = neg_keys[-1]
        for k in neg_keys:
            running += self.negative[k]
            if running >= reversed_rank + 1:
                key = k
                break
        return key

    def _positive_values(self, targets: list[tuple[float, float]]) -> dict[float, float]:
        """q -> value for each (rank among the positive bins, q), in one pass over the bins."""
        values: dict[float, float] = {}
        items = sorted(self.positive.items())
        pending = iter(sorted(targets))
        target, q = next(pending)
        running = 0.0
        for k, c in items:
            running += c
            while running > target:
                values[q] = _MAPPING.value(k)
                step = next(pending, None)
                if step is None:
                    return values
                target, q = step
        # Rounding left ranks past the last bin: ddsketch answers with the largest key.
        last = _MAPPING.value(items[-1][0])
        values[q] = last
        for _, q in pending:
            values[q] = last
        return values

    def summary(self, keep_sketch: bool = True) -> DurationSummary | None:
        count = self.count
        if count <= 0:
            return None
        p50, p95, p99 = self.quantiles(_QUANTILES)
        return DurationSummary(
            samples=round(count),
            p50_ms=p50,
            p95_ms=p95,
            p99_ms=p99,
            avg_ms=self.sum / count,
            sketch=self.to_bytes() if keep_sketch else b"",
        )


def _merged(blobs: Iterable[bytes]) -> _Bins:
    total = _Bins()
    for blob in blobs:
        if blob:
            total.add(_Bins.from_bytes(blob))
    return total


def serialize(sketch: DDSketch) -> bytes:
    """The compact byte form of a sketch (see the module docstring)."""
    return _Bins.from_sketch(sketch).to_bytes()


def deserialize(data: bytes) -> DDSketch:
    """The sketch `serialize` wrote; raises SketchError on foreign or damaged bytes."""
    return _Bins.from_bytes(data).to_sketch()


def merge(blobs: Iterable[bytes]) -> DDSketch:
    """One sketch holding every value of the serialized sketches (exact: bins are added, not resampled).

    Empty byte strings are skipped, so a column that may hold no sketch can be passed as it is.
    """
    return _merged(blobs).to_sketch()


def summarize(sketch: DDSketch) -> DurationSummary | None:
    """Samples, p50/p95/p99 and mean of a sketch, with its serialized form; None when it is empty.

    Quantiles are clamped to the exact min/max, which only moves them closer to the true values
    (a single sample reads back exactly instead of within 1%).
    """
    return _Bins.from_sketch(sketch).summary()


def summarize_merged(blobs: Iterable[bytes], keep_sketch: bool = True) -> DurationSummary | None:
    """`summarize(merge(blobs))` without building a ddsketch object; None when all are empty.

    With keep_sketch=False the summary's `sketch` is b"" (queries need only the numbers).
    """
    return _merged(blobs).summary(keep_sketch)
