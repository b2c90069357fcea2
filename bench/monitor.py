"""MonitorService benchmark: the queue board (GetOverview, ListQueues) and a job list page (ListJobs),
beside bull-board and raw Redis in the same run.

    uv run python -m bench.monitor            # full run, about four minutes on 2 cores
    uv run python -m bench.monitor --quick    # smoke run, under a minute; no bull-board

The board's queues are made by Node BullMQ (bench/node/workload.mjs: Queue.addBulk, Workers); the
ListJobs queue is written raw (see bench.monitor_workload). The suite (heartbeat, collector and monitor
targets in one gRPC server, `python -m bench.server monitor`) runs in a process of its own; callers run
in a load-generator process; bull-board (bench/node/board.mjs) runs in a Node process on the same Redis
and queues, measured with the board's loads, warm-up and connections. Redis is REDIS_URL when set,
else an embedded one; the run's keys live under prefixes of its own and are deleted at the end.

It prints figures and the targets beside them; it never fails on time. Results also go to
build/bench/monitor.json.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import redis
from redis.utils import HIREDIS_AVAILABLE

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_core.auth import TokenAuthority

from . import monitor_report as report
from . import monitor_workload as workload
from . import nodejs, record, text
from .client import Window
from .figures import percentile
from .monitor_client import CallsResult, GrpcReadJob, HttpReadJob
from .procs import (
    BenchError,
    ClientProcess,
    ServerProcess,
    delete_keys,
    delete_matching,
    machine_sample,
    start_redis,
)
from .server import SECRET_ENV

RESULTS = record.results_path("monitor")
BIG_QUEUE = "archive-completed"


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes and call counts of one run."""

    mode: str
    queues: int
    jobs_per_queue: int
    big_queue_jobs: int
    # The same callers and calls for the board over gRPC and for bull-board.
    callers: int
    sequential_calls: int
    calls_per_caller: int
    bull_board: bool
    list_jobs_calls: int
    page_size: int
    # Long enough to cross several of the board's queue discoveries (every 2 s; longer when SCAN is slow).
    discovery_s: float


FULL = Plan(
    mode="full",
    queues=100,
    jobs_per_queue=1000,
    big_queue_jobs=1_000_000,
    callers=50,
    sequential_calls=500,
    calls_per_caller=40,
    bull_board=True,
    list_jobs_calls=200,
    page_size=50,
    discovery_s=21.0,
)
QUICK = replace(
    FULL,
    mode="quick",
    queues=10,
    jobs_per_queue=100,
    big_queue_jobs=100_000,
    sequential_calls=50,
    calls_per_caller=4,
    bull_board=False,
    list_jobs_calls=50,
    discovery_s=1.0,
)


def _log(started: float, text: str) -> None:
    """Progress on stderr: a full run is silent for minutes otherwise."""
    print(f"[{time.time() - started:6.1f} s] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Sample:
    """Server, Redis and machine counters at one instant."""

    at: float
    server_cpu_s: float
    server_rss: int
    redis_calls: int
    redis_lindex_calls: int
    redis_cpu_s: float
    machine_busy_s: float
    machine_total_s: float


def sample_counters(server: ServerProcess, redis_client: redis.Redis) -> Sample:
    """The server's CPU and RSS, Redis's commands and CPU, the machine's CPU, now."""
    proc = server.sample()
    stats: dict[str, Any] = redis_client.info("commandstats")
    cpu: dict[str, Any] = redis_client.info("cpu")
    machine = machine_sample()
    return Sample(
        at=time.perf_counter(),
        server_cpu_s=proc.cpu_s,
        server_rss=proc.rss,
        redis_calls=sum(int(v.get("calls", 0)) for v in stats.values()),
        redis_lindex_calls=int(stats.get("cmdstat_lindex", {}).get("calls", 0)),
        redis_cpu_s=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        machine_busy_s=machine.busy_s,
        machine_total_s=machine.total_s,
    )


class Bench:
    """One run: Redis, the workload, the servers and the load generator."""

    def __init__(self, plan: Plan, stack: ExitStack) -> None:
        self.plan = plan
        self.stack = stack
        self.started = time.time()
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workermon-bench-")))
        run = uuid.uuid4().hex[:10]
        self.bull_prefix = f"wmmon-{run}"
        self.suite_prefix = f"wmmon-{run}-suite"
        self.redis_url, self.redis_kind = start_redis(self.tmp, stack)
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        stack.callback(self._forget_keys)
        self.cleanup: dict[str, Any] = {}
        self.secret = secrets.token_urlsafe(48)
        authority = TokenAuthority(self.secret)
        self.viewer_token = authority.mint("bench-dashboard", "viewer")
        self.operator_token = authority.mint("bench-operator", "operator")
        self.load = ClientProcess(multiprocessing.get_context("spawn"))  # no fork: grpc does not survive one
        stack.callback(self.load.stop)
        self.names = workload.queue_names(plan.queues)
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.servers = 0

    def log(self, text: str) -> None:
        """Progress line on stderr."""
        _log(self.started, text)

    def _forget_keys(self) -> None:
        began = time.perf_counter()
        deleted = delete_matching(self.redis, self.bull_prefix + ":*") + delete_keys(
            self.redis, self.suite_prefix
        )
        self.cleanup = {"keys_deleted": deleted, "seconds": time.perf_counter() - began}

    # --- processes ----------------------------------------------------------------------------------

    def start_monitor(self, live_max_age: float) -> ServerProcess:
        """The suite in its own process, stopped with the run at the latest."""
        self.servers += 1
        env = {
            SECRET_ENV: self.secret,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 'workermon.db'}",
            "WORKERMON_DATA_DIR": str(self.tmp / "data"),
            "WORKERMON_REDIS_PREFIX": self.suite_prefix,
            "WORKERMON_QUEUE_PREFIX": self.bull_prefix,
            "WORKERMON_COLLECTOR_SCHEDULE": "false",
            "WORKERMON_LIVE_MAX_AGE_SECONDS": f"{live_max_age:g}",
            "WORKERMON_SHUTDOWN_GRACE_SECONDS": "1",
        }
        server = ServerProcess("monitor", [], env, self.tmp / f"monitor-{self.servers}.log")
        self.stack.callback(server.stop)
        server.wait_listening()
        return server

    def collect_now(self, server: ServerProcess) -> dict[str, Any]:
        """One collection, so the board shows per-minute history as it would in production."""
        began = time.perf_counter()
        with grpc.insecure_channel(server.target) as channel:
            reply = col_grpc.CollectorServiceStub(channel).CollectNow(
                col_pb.CollectNowRequest(),
                metadata=(("authorization", f"Bearer {self.operator_token}"),),
                timeout=120,
            )
        if reply.errors:
            self.warnings.append(
                f"CollectNow: {len(reply.errors)} queue errors, e.g. {reply.errors[0].message}"
            )
        return {"queues": len(reply.snapshots), "seconds": time.perf_counter() - began}

    def populate(self) -> workload.Populated:
        """The board's queues, made by Node BullMQ (raw writes, and a note, when Node cannot run); their
        counts checked against the plan and read back with BullMQBackend.states."""
        plan = self.plan
        planned = workload.full_counts(workload.state_counts(plan.jobs_per_queue))
        try:
            populated, made = workload.populate_node(
                self.redis_url, self.bull_prefix, self.names, plan.jobs_per_queue
            )
        except nodejs.NodeUnavailable as exc:
            self.notes.append(f"queues written raw, not by Node BullMQ: {exc}")
            populated = workload.populate(self.redis, self.bull_prefix, self.names, plan.jobs_per_queue)
            made = {name: planned for name in self.names}
        self.warnings += [
            f"{name}: Node BullMQ made {counts}, planned {planned}"
            for name, counts in made.items()
            if workload.full_counts(counts) != planned
        ]
        self.warnings += workload.check_states(self.redis_url, self.bull_prefix, made)
        return populated

    def start_board(self) -> ServerProcess | str:
        """bull-board in Node, or why it cannot run."""
        try:
            command = nodejs.command("board.mjs")
        except nodejs.NodeUnavailable as exc:
            return str(exc)
        server = ServerProcess(
            "bull-board",
            [self.redis_url, self.bull_prefix, ",".join(self.names)],
            {},
            self.tmp / "bull-board.log",
            command=command,
        )
        self.stack.callback(server.stop)
        try:
            server.wait_listening()
        except BenchError as exc:
            server.stop()
            # The log's first error line says why; the whole stack trace would swamp the table.
            lines = str(exc).splitlines()
            return "bull-board did not start: " + next((x.strip() for x in lines if "Error" in x), lines[0])
        return server

    # --- measurements -------------------------------------------------------------------------------

    def sample(self, server: ServerProcess) -> Sample:
        """Every counter the figures are computed from."""
        return sample_counters(server, self.redis)

    def case(self, server: ServerProcess, job: GrpcReadJob | HttpReadJob, queues: int = 0) -> dict[str, Any]:
        """One batch of calls from the load generator, the server and Redis sampled around it.

        `queues` > 0: count the board's Redis readings (one LINDEX per queue per reading)."""
        self.load.send(job)
        self.load.receive(timeout=300)  # connected and warmed up
        before = self.sample(server)
        self.load.send(Window(0.0, 0.0))
        result: CallsResult = self.load.receive(timeout=1800)
        after = self.sample(server)
        server.check_alive()
        return report.call_stats(result, job.callers, before, after, queues)

    def _grpc(self, server: ServerProcess, rpc: str, callers: int, calls: int, **extra: Any) -> GrpcReadJob:
        """GrpcReadJob against `server` with the viewer token."""
        return GrpcReadJob(server.target, self.viewer_token, rpc, callers, calls, **extra)

    def board(self, live_max_age: float) -> dict[str, Any]:
        """GetOverview and ListQueues, one caller then `callers` concurrent callers."""
        plan = self.plan
        server = self.start_monitor(live_max_age)
        result: dict[str, Any] = {"live_max_age_s": live_max_age, "pid": server.proc.pid}
        result["collect_now"] = self.collect_now(server)
        result["rss_before_mb"] = server.sample().rss / 2**20
        for rpc in ("overview", "queues"):
            result[rpc] = {
                load: self.case(
                    server, self._grpc(server, rpc, callers, calls, expected_items=plan.queues), plan.queues
                )
                for load, callers, calls in self.loads()
            }
            for key, case in result[rpc].items():
                self._check_items(f"{rpc} {key}", case["items"], plan.queues)
        result["rss_after_mb"] = server.sample().rss / 2**20
        server.stop()
        return result

    def loads(self) -> list[tuple[str, int, int]]:
        """(name, callers, calls per caller) of the loads every board is measured under."""
        plan = self.plan
        return [("sequential", 1, plan.sequential_calls), ("concurrent", plan.callers, plan.calls_per_caller)]

    def _check_items(self, what: str, items: int, expected: int) -> None:
        if items != expected:
            self.warnings.append(f"{what}: {items} items in the answer, expected {expected}")

    def bull_board(self) -> dict[str, Any]:
        """bull-board's queue list (what its UI polls) for the same queues, from the same Redis."""
        if not self.plan.bull_board:
            return {"skipped": True, "reason": "quick mode: bull-board is not run"}
        started = self.start_board()
        if isinstance(started, str):
            self.notes.append(f"bull-board not measured: {started}")
            return {"skipped": True, "reason": started}
        server, plan = started, self.plan
        base = f"http://{server.target}/api/queues"
        home = f"{base}?page=1&jobsPerPage=10"
        queue_page = f"{base}?activeQueue={self.names[0]}&status=latest&page=1&jobsPerPage=10"
        result: dict[str, Any] = {
            "skipped": False,
            "pid": server.proc.pid,
            "url": home,
            "queue_url": queue_page,
        }
        result["rss_before_mb"] = server.sample().rss / 2**20
        # Measured as the board is: the same loads, warm-up and connections (GrpcReadJob, HttpReadJob).
        for load, callers, calls in self.loads():
            result[load] = self.case(
                server, HttpReadJob(home, callers, calls, "queues", expected_items=plan.queues)
            )
        result["queue_page"] = self.case(
            server, HttpReadJob(queue_page, 1, plan.sequential_calls, "queues", expected_items=plan.queues)
        )
        for key in ("sequential", "concurrent", "queue_page"):
            self._check_items(f"bull-board {key}", result[key]["items"], plan.queues)
        result["rss_after_mb"] = server.sample().rss / 2**20
        result["version"] = nodejs.package_version("@bull-board/api")
        server.stop()
        return result

    def jobs(self) -> dict[str, Any]:
        """ListJobs first page of a queue of `big_queue_jobs` completed jobs, beside its raw Redis work;
        then the board with that queue's keys in Redis (queue discovery SCANs every key)."""
        plan = self.plan
        self.log(f"writing {plan.big_queue_jobs:,} completed jobs into one queue")
        write_s = workload.populate_completed(self.redis, self.bull_prefix, BIG_QUEUE, plan.big_queue_jobs)
        problems = workload.check_states(
            self.redis_url, self.bull_prefix, {BIG_QUEUE: {"completed": plan.big_queue_jobs}}
        )
        self.warnings += problems
        server = self.start_monitor(1.0)
        result: dict[str, Any] = {
            "jobs": plan.big_queue_jobs,
            "write": {"seconds": write_s, "jobs_per_s": plan.big_queue_jobs / write_s},
            "redis_keys": int(self.redis.dbsize()),
            "rss_before_mb": server.sample().rss / 2**20,
        }
        self.log("ListJobs, first page")
        job = self._grpc(
            server,
            "jobs",
            1,
            plan.list_jobs_calls,
            queue=BIG_QUEUE,
            page_size=plan.page_size,
            expected_items=plan.page_size,
        )
        result["grpc"] = self.case(server, job)
        self._check_items("ListJobs", result["grpc"]["items"], plan.page_size)
        result["raw"] = self._raw_pages()
        result["rss_after_mb"] = server.sample().rss / 2**20
        self.log(f"ListQueues for {plan.discovery_s:g} s with every key in Redis")
        job = self._grpc(server, "queues", 1, 0, duration_s=plan.discovery_s)
        result["discovery"] = self.case(server, job, plan.queues + 1)
        self._check_items("ListQueues with the big queue", result["discovery"]["items"], plan.queues + 1)
        server.stop()
        return result

    def _raw_pages(self) -> dict[str, Any]:
        plan = self.plan
        for _ in range(20):
            workload.raw_page(self.redis, self.bull_prefix, BIG_QUEUE, plan.page_size)
        latencies = []
        began = time.perf_counter()
        for _ in range(plan.list_jobs_calls):
            sent = time.perf_counter()
            read = workload.raw_page(self.redis, self.bull_prefix, BIG_QUEUE, plan.page_size)
            latencies.append((time.perf_counter() - sent) * 1000.0)
        seconds = time.perf_counter() - began
        self._check_items("raw page", read, plan.page_size)
        return {
            "calls": len(latencies),
            "p50_ms": percentile(latencies, 50),
            "p99_ms": percentile(latencies, 99),
            "max_ms": max(latencies),
            "calls_per_s": len(latencies) / seconds,
        }

    def topology(self) -> dict[str, Any]:
        """Where everything ran."""
        info: dict[str, Any] = self.redis.info("server")
        return {
            "cpus": os.cpu_count(),
            "load_pid": self.load.pid,
            "redis": self.redis_kind,
            "redis_version": info.get("redis_version", "?"),
            "bull_prefix": self.bull_prefix,
            "suite_prefix": self.suite_prefix,
            "python": sys.version.split()[0],
            "redis_parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)",
            "node": nodejs.version(),
        }


def run(plan: Plan) -> dict[str, Any]:
    """Every phase, in order; the dict is what goes to the JSON file."""
    with ExitStack() as stack:
        bench = Bench(plan, stack)
        results = {**record.run_header(plan), "topology": bench.topology()}
        bench.log(f"making {plan.queues} queues of {plan.jobs_per_queue:,} jobs with Node BullMQ")
        results["workload"] = asdict(bench.populate())
        bench.log("queue board, live counts shared for 1 s (the default)")
        results["board"] = bench.board(1.0)
        bench.log("queue board, live counts read on every call")
        results["board_live0"] = bench.board(0.0)
        bench.log("bull-board")
        results["bull_board"] = bench.bull_board()
        results["jobs"] = bench.jobs()
        bench.log("cleanup")
        results["warnings"] = bench.warnings
        results["notes"] = bench.notes
        started = bench.started
    results["cleanup"] = bench.cleanup
    results["elapsed_s"] = time.time() - started
    report.derive(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    return text.main(
        "python -m bench.monitor",
        __doc__.split("\n")[0],
        plans=(FULL, QUICK),
        run=run,
        table=report.table,
        results_path=RESULTS,
        quick_help="small smoke run, without bull-board",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
