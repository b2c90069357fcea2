"""Soak test: the whole suite under steady production-like load for a long time; is anything growing?

    uv run python -m bench.soak                  # 30 minutes (make soak); not part of make test / bench
    uv run python -m bench.soak --minutes 5      # a shorter look

Each service and the gateway run in a `workermon serve --target <name>` process of their own, on
PostgreSQL (DATABASE_URL names the server; the run creates a database of its own and drops it after)
and Redis (REDIS_URL, else an embedded one; the run's keys live under prefixes of its own and are
deleted at the end). Load-generator processes drive, for the whole run: a fleet of workers beating at a
fixed interval (open loop, spread evenly), busy BullMQ queues (jobs added and finished every second),
SSE clients on the gateway's live stream and HTTP pollers of the routes the admin UI polls. Every
suite process's RSS and CPU are sampled throughout.

Targets (informational; the exit status is 0 either way): every process's RSS grows less than 10 %
from the end of the warm-up to the end, no error of any kind, GET /api/v1/overview p99 < 100 ms after
the warm-up. Results go to build/bench/soak.json.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import secrets
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from workermon_core.auth import TokenAuthority

from . import monitor_workload, record, text
from .client import BEAT_METHOD, LoadResult, UnaryJob, Window
from .figures import percentile
from .gateway_client import SseJob, SseResult
from .procs import ClientProcess, delete_keys, delete_matching, start_redis
from .soak_load import ActivityResult, PollJob, PollResult, QueueActivityJob
from .soak_report import call_stats, derive, table
from .soak_suite import (
    PROCESSES,
    RunDatabase,
    SuiteProcesses,
    collector_cycles,
    log_levels,
    log_samples,
    postgres_from_env,
)

RESULTS = record.results_path("soak")
# Jobs written into every queue before the suite starts, so its first discovery finds them all.
POPULATED_JOBS = 200
BEAT_CHANNELS = 4


@dataclass(frozen=True, slots=True)
class Plan:
    """Duration and sizes of one run."""

    mode: str
    minutes: float
    warmup_minutes: float
    workers: int
    beat_interval_s: float
    queues: int
    jobs_per_queue_per_s: float
    sse: int
    pollers: int
    poll_interval_s: float
    sample_s: float


FULL = Plan(
    mode="full",
    minutes=30.0,
    warmup_minutes=5.0,
    workers=5000,
    beat_interval_s=10.0,
    queues=100,
    jobs_per_queue_per_s=1.0,
    sse=50,
    pollers=20,
    poll_interval_s=2.0,
    sample_s=10.0,
)


class Soak:
    """One run: Redis, the database, the suite's processes and the load generators."""

    def __init__(self, plan: Plan, stack: ExitStack) -> None:
        self.plan = plan
        self.started = time.time()
        admin_url = postgres_from_env()
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workermon-soak-")))
        run = uuid.uuid4().hex[:10]
        self.bull_prefix, self.suite_prefix = f"wmsoak-{run}", f"wmsoak-{run}-suite"
        self.redis_url, self.redis_kind = start_redis(self.tmp, stack)
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        self.cleanup: dict[str, Any] = {}
        stack.callback(self._forget_keys)
        self.database = RunDatabase(admin_url)
        self.database.create()
        stack.callback(self.database.drop)
        secret = secrets.token_urlsafe(48)
        authority = TokenAuthority(secret)
        # Valid past the end: a live stream ends when the token it was opened with expires.
        ttl = plan.minutes * 60 + 3600
        # One token for the whole simulated fleet, bound to its ids.
        self.worker_token = authority.mint("soak-fleet", "worker", ttl, worker="bench/worker-*")
        self.viewer_token = authority.mint("soak-dashboard", "viewer", ttl)
        self.names = monitor_workload.queue_names(plan.queues)
        self.log(f"writing {plan.queues} queues of {POPULATED_JOBS} jobs")
        monitor_workload.populate(self.redis, self.bull_prefix, self.names, POPULATED_JOBS)
        env = {
            "WORKERMON_JWT_SECRET": secret,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": self.database.url,
            "WORKERMON_REDIS_PREFIX": self.suite_prefix,
            "WORKERMON_QUEUE_PREFIX": self.bull_prefix,
            "WORKERMON_BEAT_INTERVAL_SECONDS": f"{plan.beat_interval_s:g}",
            "WORKERMON_SHUTDOWN_GRACE_SECONDS": "1",
            "WORKERMON_LOG_FORMAT": "json",
        }
        # Started first: their imports overlap the suite's start.
        ctx = multiprocessing.get_context("spawn")  # no fork: grpc does not survive one
        self.loads = {kind: ClientProcess(ctx) for kind in ("beats", "sse", "polls", "queues")}
        self.loads_done = False
        stack.callback(self._stop_loads)
        self.log("migrating, then starting heartbeat, collector, monitor, incidents and gateway")
        began = time.perf_counter()
        self.suite = SuiteProcesses(env, self.tmp, stack)
        self.migrate_s = time.perf_counter() - began
        self.ready_s = self.suite.wait_ready()
        self.log(f"migrated in {self.migrate_s:.1f} s, every process ready {self.ready_s:.1f} s later")

    def log(self, line: str) -> None:
        """Progress on stderr: a run is silent for minutes otherwise."""
        print(f"[{time.time() - self.started:7.1f} s] {line}", file=sys.stderr, flush=True)

    def _forget_keys(self) -> None:
        began = time.perf_counter()
        deleted = delete_matching(self.redis, self.bull_prefix + ":*") + delete_keys(
            self.redis, self.suite_prefix
        )
        self.cleanup = {"keys_deleted": deleted, "seconds": time.perf_counter() - began}

    def _stop_loads(self) -> None:
        for load in self.loads.values():
            if not self.loads_done:
                # Interrupted: a job reads no stop message before its window ends.
                load.proc.terminate()
            load.stop()

    def _jobs(self) -> dict[str, object]:
        plan = self.plan
        return {
            "beats": UnaryJob(
                target=self.suite.processes["heartbeat"].target,
                method=BEAT_METHOD,
                token=self.worker_token,
                first=0,
                count=plan.workers,
                concurrency=1,
                channels=BEAT_CHANNELS,
                rate=plan.workers / plan.beat_interval_s,
            ),
            "sse": SseJob(self.suite.base_url, self.viewer_token, plan.sse),
            "polls": PollJob(self.suite.base_url, self.viewer_token, plan.pollers, plan.poll_interval_s),
            "queues": QueueActivityJob(
                self.redis_url,
                self.bull_prefix,
                tuple(self.names),
                POPULATED_JOBS + 1,
                plan.jobs_per_queue_per_s,
            ),
        }

    def load(self) -> tuple[dict[str, Any], dict[str, list[list[float]]], float]:
        """Every load job ready, then one window for all of them; the suite sampled until it ends."""
        for kind, job in self._jobs().items():
            self.loads[kind].send(job)
        for kind, load in self.loads.items():
            load.receive(timeout=300)
            self.log(f"{kind}: ready")
        duration = self.plan.minutes * 60
        start = time.time() + 1.0
        warmup_until = start + self.plan.warmup_minutes * 60 if self.plan.warmup_minutes else 0.0
        for load in self.loads.values():
            load.send(Window(start, start + duration, warmup_until))
        self.log(f"load running for {self.plan.minutes:g} min")
        samples = self._sample_until(start, start + duration)
        outcomes = {kind: load.receive(timeout=300) for kind, load in self.loads.items()}
        self.loads_done = True
        return outcomes, samples, start

    def _sample_until(self, start: float, end: float) -> dict[str, list[list[float]]]:
        """[seconds since the start, RSS bytes, CPU seconds] of every suite process every `sample_s`."""
        samples: dict[str, list[list[float]]] = {name: [] for name in PROCESSES}
        time.sleep(max(0.0, start - time.time()))
        due, last_log = start, start
        while due <= end + 0.001:
            for name, server in self.suite.processes.items():
                if server.proc.poll() is None:
                    sample = server.sample()
                    samples[name].append([time.time() - start, float(sample.rss), sample.cpu_s])
            if time.time() - last_log >= 60:
                last_log = time.time()
                rss = ", ".join(f"{n} {s[-1][1] / 2**20:.0f}" for n, s in samples.items() if s)
                self.log(f"RSS MB: {rss}")
            due += self.plan.sample_s
            time.sleep(max(0.0, due - time.time()))
        return samples

    def topology(self) -> dict[str, Any]:
        """Where everything ran."""
        info: dict[str, Any] = self.redis.info("server")
        engine = sa.create_engine(self.database.url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                version = str(conn.execute(sa.text("SHOW server_version")).scalar())
        finally:
            engine.dispose()
        return {
            "cpus": os.cpu_count(),
            "pids": {name: server.proc.pid for name, server in self.suite.processes.items()},
            "load_pids": {kind: load.pid for kind, load in self.loads.items()},
            "http_url": self.suite.base_url,
            "redis": self.redis_kind,
            "redis_version": info.get("redis_version", "?"),
            "postgres_version": version,
            "database": self.database.name,
            "bull_prefix": self.bull_prefix,
            "suite_prefix": self.suite_prefix,
            "migrate_s": self.migrate_s,
            "ready_s": self.ready_s,
            "python": sys.version.split()[0],
        }


def _beats(result: LoadResult, seconds: float, warmup_s: float) -> dict[str, Any]:
    """The beats answered after the warm-up, and those of the warm-up apart."""
    warmup = _beat_stats(result.warmup, warmup_s) if result.warmup is not None else None
    return {**_beat_stats(result, seconds - warmup_s), "warmup": warmup}


def _beat_stats(result: LoadResult, seconds: float) -> dict[str, Any]:
    return {
        "beats": result.completed,
        "beats_per_s": result.completed / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(result.latencies_ms, 50),
        "p99_ms": percentile(result.latencies_ms, 99),
        "max_ms": max(result.latencies_ms, default=0.0),
        "errors": result.errors,
        "dropped": result.dropped,
        "error_sample": result.error_sample,
        "client_cpu_s": result.client_cpu_s,
    }


def _sse(result: SseResult) -> dict[str, Any]:
    fields = ("clients", "opened", "open_s", "open_errors", "open_error_sample", "initial_events")
    more = ("ended_early", "end_sample", "events", "events_min", "pings", "seconds", "client_cpu_s")
    return {key: getattr(result, key) for key in (*fields, *more)}


def _polls(result: PollResult, since: float) -> dict[str, Any]:
    return {rpc: call_stats(calls.calls, since, asdict(calls)) for rpc, calls in result.routes.items()}


def run(plan: Plan) -> dict[str, Any]:
    """The whole run; the dict is what goes to the JSON file."""
    with ExitStack() as stack:
        soak = Soak(plan, stack)
        results: dict[str, Any] = {**record.run_header(plan), "topology": soak.topology()}
        outcomes, samples, start = soak.load()
        soak.log("stopping the suite")
        exit_codes = {name: server.proc.poll() for name, server in soak.suite.processes.items()}
        soak.suite.stop()
        processes = {}
        for name, server in soak.suite.processes.items():
            processes[name] = {
                "samples": samples[name],
                "exit_code": exit_codes[name],
                "log_levels": dict(log_levels(server.log_path)),
                "log_errors": log_samples(server.log_path),
                "log_warnings": log_samples(server.log_path, ("warning",)),
            }
        results["processes"] = processes
        results["collector"] = {"cycles": collector_cycles(soak.suite.processes["collector"].log_path)}
        seconds = plan.minutes * 60
        results["beats"] = _beats(outcomes["beats"], seconds, plan.warmup_minutes * 60)
        results["sse"] = _sse(outcomes["sse"])
        results["polls"] = _polls(outcomes["polls"], start + plan.warmup_minutes * 60)
        activity: ActivityResult = outcomes["queues"]
        results["queue_activity"] = asdict(activity)
        soak.log("cleanup")
        started = soak.started
    results["cleanup"] = soak.cleanup
    results["elapsed_s"] = time.time() - started
    results["findings"] = []
    derive(results)
    return results


def _plan(args: argparse.Namespace) -> Plan:
    sizes = {
        "minutes": args.minutes,
        "warmup_minutes": args.warmup_minutes,
        "workers": args.workers,
        "queues": args.queues,
        "sse": args.sse,
        "pollers": args.pollers,
    }
    changed = any(value != getattr(FULL, key) for key, value in sizes.items())
    # About 20 samples at least in a short run; every 10 s in a long one.
    sample_s = min(FULL.sample_s, max(1.0, args.minutes * 60 / 20))
    return Plan(**{**asdict(FULL), **sizes, "mode": "custom" if changed else "full", "sample_s": sample_s})


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=FULL.minutes, help="how long the load runs (30)")
    parser.add_argument(
        "--warmup-minutes", type=float, default=FULL.warmup_minutes, help="left out of growth and p99 (5)"
    )
    parser.add_argument("--workers", type=int, default=FULL.workers, help="simulated workers (5,000)")
    parser.add_argument("--queues", type=int, default=FULL.queues, help="busy BullMQ queues (100)")
    parser.add_argument("--sse", type=int, default=FULL.sse, help="live-stream clients (50)")
    parser.add_argument("--pollers", type=int, default=FULL.pollers, help="HTTP pollers (20)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup_minutes < args.minutes:
        parser.error("--warmup-minutes must be at least 0 and shorter than --minutes")
    # SIGTERM unwinds like Ctrl-C: the suite's processes stopped, the database dropped, the keys deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    return text.publish(run(_plan(args)), table, args.output)


if __name__ == "__main__":
    sys.exit(main())
