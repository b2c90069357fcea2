"""HeartbeatService benchmark: beat ingestion (unary and streamed) and worker listing.

    uv run python -m bench.heartbeat            # full run, about 3 minutes on 2 cores
    uv run python -m bench.heartbeat --quick    # smoke run, about 25 seconds

The server runs in a process of its own (so its CPU time is measurable and not shared with the load),
next to a bare grpc.aio echo server that shows gRPC-Python's own ceiling on the same load; load
generators run in further processes. The replicas phase repeats the unary load against one and two
processes of each server (two heartbeat processes share Redis and the prefix). Redis is REDIS_URL when
set, else an embedded one; every run uses a key prefix of its own and removes its keys afterwards.

It prints figures and the issue's targets beside them; it never fails on time. Results also go to
build/bench/heartbeat.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from workermon_core.auth import TokenAuthority

from . import client, record, report, text
from .figures import LoadStats, ReadStats, load_stats, read_stats
from .procs import BenchError, ClientProcess, ServerProcess, delete_keys, redis_sample, snapshot, start_redis
from .server import ECHO_METHOD, SECRET_ENV

RESULTS = record.results_path("heartbeat")


@dataclass(frozen=True, slots=True)
class Plan:
    """How much load each phase applies; concurrency figures are totals over all load generators."""

    mode: str
    workers: int
    clients: int
    concurrency: int
    channels: int
    warmup_s: float
    duration_s: float
    paced_fraction: float
    streams: int
    stream_channels: int
    stream_concurrency: int
    list_workers: int
    list_page_sizes: tuple[int, ...]
    list_calls: int
    list_callers: int
    list_calls_per_caller: int
    summary_calls: int


FULL = Plan(
    mode="full",
    workers=2000,
    clients=1,
    # One server process saturates with a handful in flight; more only lengthens the queue (latency).
    concurrency=16,
    channels=4,
    warmup_s=3.0,
    duration_s=15.0,
    # Half the measured ceiling: where a deployment would run, and still far from the target rate.
    paced_fraction=0.5,
    streams=2000,
    stream_channels=4,
    stream_concurrency=16,
    list_workers=100_000,
    list_page_sizes=(50, 100),
    list_calls=500,
    list_callers=10,
    list_calls_per_caller=100,
    summary_calls=200,
)
QUICK = replace(
    FULL,
    mode="quick",
    workers=200,
    concurrency=8,
    channels=2,
    warmup_s=0.3,
    duration_s=1.0,
    streams=200,
    stream_channels=2,
    stream_concurrency=8,
    list_workers=1000,
    list_calls=50,
    list_calls_per_caller=10,
    summary_calls=20,
)


def _split(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, count) of each of `parts` near-equal slices of range(total)."""
    bounds = [total * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1] - bounds[k]) for k in range(parts)]


def _sleep_until(wall: float) -> None:
    time.sleep(max(0.0, wall - time.time()))


class Bench:
    """One run: Redis, the two servers and the load generators, and the phases run against them."""

    def __init__(self, plan: Plan, stack: ExitStack, profile: str) -> None:
        self.plan = plan
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workermon-bench-")))
        self.prefix = "wmbench-" + uuid.uuid4().hex[:10]
        self.redis_url, self.redis_kind = start_redis(self.tmp, stack)
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        stack.callback(self._forget_keys)
        secret = secrets.token_urlsafe(48)
        authority = TokenAuthority(secret)
        # One token for the whole simulated fleet, bound to its ids.
        self.worker_token = authority.mint("bench-fleet", "worker", worker="bench/worker-*")
        self.viewer_token = authority.mint("bench-dashboard", "viewer")
        ctx = multiprocessing.get_context("spawn")  # no fork: grpc does not survive one
        self.clients = [ClientProcess(ctx) for _ in range(plan.clients)]
        for load in self.clients:
            stack.callback(load.stop)
        self.stack = stack
        self.env = {SECRET_ENV: secret}
        # Every heartbeat process of the run shares the Redis and the prefix, as replicas do.
        self.hb_args = ["--redis-url", self.redis_url, "--prefix", self.prefix]
        profiled = ["--profile", str(Path(profile).resolve())] if profile else []
        self.echo = self._spawn("echo", [], "echo")
        self.heartbeat = self._spawn("heartbeat", self.hb_args + profiled, "heartbeat")
        self.echo.wait_listening()
        self.heartbeat.wait_listening()
        self.warnings: list[str] = []

    def _spawn(self, kind: str, args: list[str], name: str) -> ServerProcess:
        """A server process of the run, stopped with it at the latest."""
        server = ServerProcess(kind, args, self.env, self.tmp / f"{name}.log")
        self.stack.callback(server.stop)
        return server

    def _forget_keys(self) -> None:
        if self.redis_kind == "REDIS_URL":
            delete_keys(self.redis, self.prefix)

    # --- measurement windows ------------------------------------------------------------------------

    def _measure(
        self,
        servers: Sequence[ServerProcess],
        jobs: Sequence[client.Job],
        on_ready: Callable[[], None] | None = None,
        uses_redis: bool = True,
    ) -> tuple[list[client.Ready], LoadStats]:
        """Start the jobs, wait until every generator is ready, then count one common window; the
        server figures are summed over `servers`."""
        for load, job in zip(self.clients, jobs, strict=True):
            load.send(job)
        readies: list[client.Ready] = [load.receive(timeout=300) for load in self.clients]
        if on_ready is not None:
            on_ready()
        now = time.time()
        window = client.Window(now + self.plan.warmup_s, now + self.plan.warmup_s + self.plan.duration_s)
        for load in self.clients:
            load.send(window)
        _sleep_until(window.start_at)
        before = snapshot(servers, self.redis)
        _sleep_until(window.end_at)
        after = snapshot(servers, self.redis)
        results = [load.receive(timeout=120) for load in self.clients]
        for server in servers:
            server.check_alive()
        stats = load_stats(results, before, after, uses_redis)
        if not stats.beats:
            kind = servers[0].kind
            raise BenchError(f"no call succeeded against the {kind} server: {stats.error_sample}")
        return readies, stats

    def _unary_jobs(
        self, servers: Sequence[ServerProcess], method: str, rate: float = 0.0
    ) -> list[client.UnaryJob]:
        """The unary load, spread over `servers` by each channel (round-robin) when there are several."""
        n = self.plan.clients
        return [
            client.UnaryJob(
                target=",".join(server.target for server in servers),
                method=method,
                token=self.worker_token,
                first=first,
                count=count,
                concurrency=max(1, self.plan.concurrency // n),
                channels=self.plan.channels,
                rate=rate / n,
            )
            for first, count in _split(self.plan.workers, n)
        ]

    # --- phases -------------------------------------------------------------------------------------

    def _store_jobs(self) -> list[client.StoreJob]:
        n = self.plan.clients
        return [
            client.StoreJob(self.redis_url, self.prefix, first, count, max(1, self.plan.concurrency // n))
            for first, count in _split(self.plan.workers, n)
        ]

    def unary(self) -> dict[str, Any]:
        """The same closed-loop load against the echo server and HeartbeatService, the store layer
        alone (to split the server's cost per beat), then HeartbeatService below its ceiling."""
        echo_alone, beat_alone = [self.echo], [self.heartbeat]
        _, echo = self._measure(echo_alone, self._unary_jobs(echo_alone, ECHO_METHOD), uses_redis=False)
        self.echo.stop()  # idle from here on; nothing of it should linger in later samples
        _, beat = self._measure(beat_alone, self._unary_jobs(beat_alone, client.BEAT_METHOD))
        _, store = self._measure(beat_alone, self._store_jobs())
        rate = round(beat.beats_per_s * self.plan.paced_fraction)
        _, paced = self._measure(beat_alone, self._unary_jobs(beat_alone, client.BEAT_METHOD, rate))
        return {
            "echo": echo.to_dict(),
            "heartbeat": beat.to_dict(),
            "ratio": report.unary_ratio(beat, echo),
            "store_only": store.to_dict(),
            "paced": {"offered_per_s": rate, **paced.to_dict()},
        }

    def _alone_then_pair(
        self, pair: tuple[ServerProcess, ServerProcess], method: str, uses_redis: bool
    ) -> dict[str, LoadStats]:
        """The closed-loop load against the first server alone, then spread over both."""
        alone = pair[:1]
        _, one = self._measure(alone, self._unary_jobs(alone, method), uses_redis=uses_redis)
        _, two = self._measure(pair, self._unary_jobs(pair, method), uses_redis=uses_redis)
        return {"one": one, "two": two}

    def _started(self, kind: str, args: list[str], *names: str) -> list[ServerProcess]:
        """Servers started side by side (each takes seconds to import), once all of them listen."""
        servers = [self._spawn(kind, args, name) for name in names]
        for server in servers:
            server.wait_listening()
        return servers

    def replicas(self) -> dict[str, Any]:
        """The unary phase's closed-loop Beat load against one server process and against two sharing
        it, for the echo server and for HeartbeatService (both on the run's Redis and prefix)."""
        first, second = self._started("echo", [], "echo-1", "echo-2")
        echo = self._alone_then_pair((first, second), ECHO_METHOD, uses_redis=False)
        first.stop()
        second.stop()
        (spare,) = self._started("heartbeat", self.hb_args, "heartbeat-2")
        beat = self._alone_then_pair((self.heartbeat, spare), client.BEAT_METHOD, uses_redis=True)
        spare.stop()  # the later phases measure one process again
        return report.replicas(echo, beat)

    def streams(self) -> dict[str, Any]:
        """Open one BeatStream per worker, then beat through them with a bounded number in flight."""
        n = self.plan.clients
        jobs = [
            client.StreamJob(
                target=self.heartbeat.target,
                token=self.worker_token,
                first=first,
                count=count,
                concurrency=max(1, self.plan.stream_concurrency // n),
                channels=self.plan.stream_channels,
            )
            for first, count in _split(self.plan.streams, n)
        ]
        rss: dict[str, int] = {"before": self.heartbeat.sample().rss}

        def streams_open() -> None:
            rss["open"] = self.heartbeat.sample().rss

        readies, stats = self._measure([self.heartbeat], jobs, on_ready=streams_open)
        opened = sum(r.streams for r in readies)
        if opened < self.plan.streams:
            sample = next((r.open_error_sample for r in readies if r.open_error_sample), "")
            self.warnings.append(f"only {opened} of {self.plan.streams} streams opened: {sample}")
        delta_mb = (rss["open"] - rss["before"]) / 2**20
        return {
            "streams_open": opened,
            "open_s": max(r.open_s for r in readies),
            "open_errors": sum(r.open_errors for r in readies),
            "server_rss_before_mb": rss["before"] / 2**20,
            "server_rss_open_mb": rss["open"] / 2**20,
            "server_rss_per_1k_streams_mb": 1000.0 * delta_mb / opened if opened else 0.0,
            **stats.to_dict(),
        }

    def _register(self) -> dict[str, float]:
        """Bring the registry to `list_workers` workers, split across the load generators.

        Redis is not competing with the gRPC server here, so its time per Beat script is the
        script's own cost."""
        total = self.plan.list_workers
        before = redis_sample(self.redis)
        began = time.perf_counter()
        slices = _split(total, self.plan.clients)
        for load, (first, count) in zip(self.clients, slices, strict=True):
            load.send(
                client.RegisterJob(redis_url=self.redis_url, prefix=self.prefix, first=first, count=count)
            )
        for load in self.clients:
            load.receive(timeout=600)
        seconds = time.perf_counter() - began
        after = redis_sample(self.redis)
        calls = max(1, after.evalsha_calls - before.evalsha_calls)
        return {
            "register_s": seconds,
            "register_per_s": total / seconds,
            "register_redis_us_per_call": (after.evalsha_usec - before.evalsha_usec) / calls,
            "register_redis_cpu_us_per_beat": 1e6 * (after.cpu_s - before.cpu_s) / calls,
            "register_redis_cpu_pct": 100.0 * (after.cpu_s - before.cpu_s) / seconds,
        }

    def _read_case(self, rpc: str, page_size: int, callers: int, calls_per_caller: int) -> ReadStats:
        """One batch of reads from the first load generator, server and Redis sampled around it."""
        load = self.clients[0]
        load.send(
            client.ReadJob(
                self.heartbeat.target, self.viewer_token, rpc, page_size, callers, calls_per_caller
            )
        )
        load.receive(timeout=120)  # warmed up
        before = snapshot([self.heartbeat], self.redis)
        load.send(client.Window(0.0, 0.0))
        result: client.ReadResult = load.receive(timeout=600)
        after = snapshot([self.heartbeat], self.redis)
        self.heartbeat.check_alive()
        self._check_registry(rpc, page_size, result.items)
        return read_stats(result, callers, before, after)

    def listing(self) -> dict[str, Any]:
        """ListWorkers first pages and GetWorkerSummary over a registry of `list_workers` workers."""
        registration = self._register()
        plan = self.plan
        cases: dict[str, ReadStats] = {}
        for size in plan.list_page_sizes:
            cases[f"page_{size}"] = self._read_case("list", size, 1, plan.list_calls)
        first = plan.list_page_sizes[0]
        cases[f"page_{first}_concurrent_{plan.list_callers}"] = self._read_case(
            "list", first, plan.list_callers, plan.list_calls_per_caller
        )
        cases["summary"] = self._read_case("summary", 0, 1, plan.summary_calls)
        return {
            "workers": self._expected_workers(),
            **registration,
            "cases": {name: stats.to_dict() for name, stats in cases.items()},
        }

    def _expected_workers(self) -> int:
        # Every phase beats workers 0..n-1 of the same fleet, so the registry holds the largest n.
        return max(self.plan.list_workers, self.plan.workers, self.plan.streams)

    def _check_registry(self, rpc: str, page_size: int, items: int) -> None:
        expected = self._expected_workers()
        if rpc == "summary" and items != expected:
            self.warnings.append(f"GetWorkerSummary counts {items} workers, expected {expected}")
        if rpc == "list" and items != min(page_size, expected):
            self.warnings.append(f"ListWorkers page_size {page_size} returned {items} workers")

    def topology(self) -> dict[str, Any]:
        info: dict[str, Any] = self.redis.info("server")
        return {
            "cpus": os.cpu_count(),
            "server_pid": self.heartbeat.proc.pid,
            "client_pids": [load.pid for load in self.clients],
            "redis": self.redis_kind,
            "redis_version": info.get("redis_version", "?"),
            "prefix": self.prefix,
            "python": sys.version.split()[0],
            # The same environment runs the server: the reply parser it uses for Redis.
            "redis_parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)",
            "beat_request_bytes": report.beat_size(),
        }


def run(plan: Plan, profile: str = "") -> dict[str, Any]:
    """Every phase, in order; the dict is what goes to the JSON file."""
    with ExitStack() as stack:
        bench = Bench(plan, stack, profile)
        started = time.time()
        results = {**record.run_header(plan), "topology": bench.topology()}
        results["unary"] = bench.unary()
        results["replicas"] = bench.replicas()
        results["stream"] = bench.streams()
        results["list"] = bench.listing()
        results["elapsed_s"] = time.time() - started
        results["warnings"] = bench.warnings
    results["targets"] = report.targets(results)
    results["ratios"] = report.check_ratios(results)
    results["limits"] = report.limits(results)
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.heartbeat", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (a few seconds)")
    parser.add_argument("--clients", type=int, help="load-generator processes (default 1)")
    parser.add_argument("--concurrency", type=int, help="unary beats in flight in total")
    parser.add_argument("--duration", type=float, help="seconds measured per load phase")
    parser.add_argument("--streams", type=int, help="BeatStreams held open")
    parser.add_argument("--list-workers", type=int, help="workers registered for ListWorkers")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument(
        "--profile-server",
        default="",
        help="cProfile the heartbeat server into this file (slows it; for finding hot spots)",
    )
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        "clients": args.clients,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "streams": args.streams,
        "list_workers": args.list_workers,
    }
    chosen = {k: v for k, v in overrides.items() if v is not None}
    plan = replace(plan, **chosen)
    if chosen or args.profile_server:  # another size, or a slowed server, is not the plan's measurement
        plan = replace(plan, mode="custom")
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    return text.publish(run(_plan(args), args.profile_server), report.table, args.output)


if __name__ == "__main__":
    sys.exit(main())
