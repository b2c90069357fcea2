"""Turning raw samples and latencies into the figures the benchmark reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .client import LoadResult, ReadResult
from .procs import Snapshot


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of unsorted values; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def _per_s(part: float, seconds: float) -> float:
    return part / seconds if seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ReadStats:
    """A batch of read calls: client latency, and server and Redis cost per call."""

    calls: int
    callers: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    calls_per_s: float
    server_cpu_pct: float  # of one core
    server_cpu_ms_per_call: float
    redis_us_per_call: float  # EVALSHA of the LIST or SUMMARY script
    redis_cpu_pct: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_stats(result: ReadResult, callers: int, before: Snapshot, after: Snapshot) -> ReadStats:
    latencies = result.latencies_ms
    calls = len(latencies)
    server_cpu = after.server.cpu_s - before.server.cpu_s
    evalsha_calls = after.redis.evalsha_calls - before.redis.evalsha_calls
    evalsha_usec = after.redis.evalsha_usec - before.redis.evalsha_usec
    return ReadStats(
        calls=calls,
        callers=callers,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
        calls_per_s=_per_s(calls, result.seconds),
        server_cpu_pct=100.0 * _per_s(server_cpu, result.seconds),
        server_cpu_ms_per_call=1000.0 * server_cpu / calls if calls else 0.0,
        redis_us_per_call=evalsha_usec / evalsha_calls if evalsha_calls else 0.0,
        redis_cpu_pct=100.0 * _per_s(after.redis.cpu_s - before.redis.cpu_s, result.seconds),
    )


@dataclass(frozen=True, slots=True)
class LoadStats:
    """One measured window: client-side throughput and latency, server, Redis and machine CPU."""

    beats: int
    seconds: float
    beats_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    dropped: int
    server_processes: int
    server_cpu_s: float  # summed over the server processes, as are the three below
    server_cpu_pct: float  # of one core
    server_cpu_s_per_1k: float
    server_rss_mb: float
    server_cpu_s_per_process: tuple[float, ...]
    client_cpu_pct: float  # all load-generator processes, of one core
    client_cpu_s_per_1k: float
    machine_busy_pct: float  # of all cores
    machine_steal_pct: float  # of all cores, taken by the hypervisor
    redis_cpu_pct: float  # of one core
    redis_evalsha_calls: int
    redis_usec_per_call: float
    error_sample: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _per_1k(seconds: float, calls: int) -> float:
    return 1000.0 * seconds / calls if calls else 0.0


def load_stats(
    results: Sequence[LoadResult], before: Snapshot, after: Snapshot, uses_redis: bool = True
) -> LoadStats:
    """Combine every load generator's window with the server/Redis/machine counters around it.

    `uses_redis` False (the echo server) leaves the Redis figures at zero: whatever Redis did then
    was not caused by the load."""
    seconds = after.at - before.at
    latencies = [ms for r in results for ms in r.latencies_ms]
    beats = len(latencies)
    server_cpu = after.server.cpu_s - before.server.cpu_s
    client_cpu = sum(r.client_cpu_s for r in results)
    evalsha_calls = after.redis.evalsha_calls - before.redis.evalsha_calls if uses_redis else 0
    evalsha_usec = after.redis.evalsha_usec - before.redis.evalsha_usec if uses_redis else 0
    redis_cpu = after.redis.cpu_s - before.redis.cpu_s if uses_redis else 0.0
    machine_total = after.machine.total_s - before.machine.total_s
    return LoadStats(
        beats=beats,
        seconds=seconds,
        beats_per_s=_per_s(beats, seconds),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        max_ms=max(latencies, default=0.0),
        errors=sum(r.errors for r in results),
        dropped=sum(r.dropped for r in results),
        server_processes=len(after.servers),
        server_cpu_s=server_cpu,
        server_cpu_pct=100.0 * _per_s(server_cpu, seconds),
        server_cpu_s_per_1k=_per_1k(server_cpu, beats),
        server_rss_mb=after.server.rss / 2**20,
        server_cpu_s_per_process=tuple(
            a.cpu_s - b.cpu_s for a, b in zip(after.servers, before.servers, strict=True)
        ),
        client_cpu_pct=100.0 * _per_s(client_cpu, seconds),
        client_cpu_s_per_1k=_per_1k(client_cpu, beats),
        machine_busy_pct=100.0 * (after.machine.busy_s - before.machine.busy_s) / machine_total
        if machine_total
        else 0.0,
        machine_steal_pct=100.0 * (after.machine.steal_s - before.machine.steal_s) / machine_total
        if machine_total
        else 0.0,
        redis_cpu_pct=100.0 * _per_s(redis_cpu, seconds),
        redis_evalsha_calls=evalsha_calls,
        redis_usec_per_call=evalsha_usec / evalsha_calls if evalsha_calls else 0.0,
        error_sample=next((r.error_sample for r in results if r.error_sample), ""),
    )


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
