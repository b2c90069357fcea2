"""HTTP gateway benchmark: JSON routes against the same calls over gRPC, and the live stream's fan-out.

    uv run python -m bench.gateway            # full run, about two minutes on 2 cores
    uv run python -m bench.gateway --quick    # smoke run, a few seconds of each phase

The suite with its HTTP gateway (`python -m bench.server gateway`: heartbeat, collector and monitor in
one gRPC server, the gateway beside them in the same process, as `workermon serve --http` runs it) runs
in a process of its own; callers and stream clients run in a load-generator process. Redis is REDIS_URL
when set, else an embedded one; the run's keys live under prefixes of its own and are deleted at the end.

It prints figures and the targets beside them; it never fails on time. Results also go to
build/bench/gateway.json.
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
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.auth import TokenAuthority

from . import gateway_encode, record, text
from . import gateway_report as report
from . import monitor_workload as workload
from .client import Window
from .gateway_client import SseJob, SseResult, read_job
from .monitor import Sample, sample_counters
from .monitor_client import CallsResult, GrpcReadJob, HttpReadJob
from .monitor_report import call_stats
from .procs import BenchError, ClientProcess, ServerProcess, delete_keys, delete_matching, start_redis
from .server import SECRET_ENV
from .workload import report as worker_report
from .workload import worker_id

RESULTS = record.results_path("gateway")
BASE_PATH = "/api"


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes, call counts and durations of one run."""

    mode: str
    queues: int
    jobs_per_queue: int
    callers: int
    sequential_calls: int
    calls_per_caller: int
    sse_clients: int
    # Pages of ListJobs encoded to JSON per side (one queue's first page each, cycled).
    encode_samples: int
    # Server CPU with the streams open and nothing happening: at least one keep-alive (every 15 s).
    idle_s: float
    transitions: int
    transition_gap_s: float
    settle_s: float


FULL = Plan(
    mode="full",
    queues=100,
    jobs_per_queue=1000,
    callers=100,
    sequential_calls=500,
    calls_per_caller=30,
    sse_clients=500,
    encode_samples=2000,
    idle_s=20.0,
    transitions=5,
    transition_gap_s=2.5,
    settle_s=5.0,
)
QUICK = replace(
    FULL,
    mode="quick",
    queues=10,
    jobs_per_queue=100,
    callers=20,
    sequential_calls=50,
    calls_per_caller=5,
    sse_clients=20,
    encode_samples=200,
    idle_s=2.0,
    transitions=2,
    transition_gap_s=1.0,
    settle_s=2.0,
)


class Bench:
    """One run: Redis, the workload, the gateway server and the load generator."""

    def __init__(self, plan: Plan, stack: ExitStack) -> None:
        self.plan = plan
        self.stack = stack
        self.started = time.time()
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workermon-bench-")))
        run = uuid.uuid4().hex[:10]
        self.bull_prefix = f"wmgw-{run}"
        self.suite_prefix = f"wmgw-{run}-suite"
        self.redis_url, self.redis_kind = start_redis(self.tmp, stack)
        self.redis = redis.Redis.from_url(self.redis_url)
        stack.callback(self.redis.close)
        stack.callback(self._forget_keys)
        self.cleanup: dict[str, Any] = {}
        self.secret = secrets.token_urlsafe(48)
        self.authority = TokenAuthority(self.secret)
        self.viewer_token = self.authority.mint("bench-dashboard", "viewer")
        self.operator_token = self.authority.mint("bench-operator", "operator")
        self.load = ClientProcess(multiprocessing.get_context("spawn"))  # no fork: grpc does not survive one
        stack.callback(self.load.stop)
        self.names = workload.queue_names(plan.queues)
        self.warnings: list[str] = []
        # The queues exist before the server starts, so its first queue discovery finds all of them.
        self.log(f"writing {plan.queues} queues of {plan.jobs_per_queue:,} jobs")
        self.populated = workload.populate(self.redis, self.bull_prefix, self.names, plan.jobs_per_queue)
        expected = {name: workload.state_counts(plan.jobs_per_queue) for name in self.names}
        self.warnings += workload.check_states(self.redis_url, self.bull_prefix, expected)
        self.server = self._start_server()

    def log(self, text: str) -> None:
        """Progress on stderr: a full run is silent for minutes otherwise."""
        print(f"[{time.time() - self.started:6.1f} s] {text}", file=sys.stderr, flush=True)

    def _forget_keys(self) -> None:
        began = time.perf_counter()
        deleted = delete_matching(self.redis, self.bull_prefix + ":*") + delete_keys(
            self.redis, self.suite_prefix
        )
        self.cleanup = {"keys_deleted": deleted, "seconds": time.perf_counter() - began}

    def _start_server(self) -> ServerProcess:
        """The suite and its gateway in one process, stopped with the run at the latest."""
        env = {
            SECRET_ENV: self.secret,
            "REDIS_URL": self.redis_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.tmp / 'workermon.db'}",
            "WORKERMON_DATA_DIR": str(self.tmp / "data"),
            "WORKERMON_REDIS_PREFIX": self.suite_prefix,
            "WORKERMON_QUEUE_PREFIX": self.bull_prefix,
            "WORKERMON_COLLECTOR_SCHEDULE": "false",
            "WORKERMON_SHUTDOWN_GRACE_SECONDS": "1",
            "WORKERMON_BASE_PATH": BASE_PATH,
        }
        server = ServerProcess("gateway", [], env, self.tmp / "gateway.log")
        self.stack.callback(server.stop)
        server.wait_listening()
        if len(server.more_ports) != 1:
            raise BenchError(f"the gateway server printed no HTTP port ({server.more_ports})")
        return server

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.more_ports[0]}{BASE_PATH}"

    def sample(self) -> Sample:
        return sample_counters(self.server, self.redis)

    def collect_now(self) -> dict[str, Any]:
        """One collection, so the overview shows per-minute history as it would in production."""
        began = time.perf_counter()
        with grpc.insecure_channel(self.server.target) as channel:
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

    # --- JSON routes against gRPC ---------------------------------------------------------------------

    def case(self, rpc: str, job: GrpcReadJob | HttpReadJob) -> dict[str, Any]:
        """One batch of calls from the load generator, the server and Redis sampled around it."""
        self.load.send(job)
        self.load.receive(timeout=300)  # connected and warmed up
        before = self.sample()
        self.load.send(Window(0.0, 0.0))
        result: CallsResult = self.load.receive(timeout=1800)
        after = self.sample()
        self.server.check_alive()
        stats = call_stats(result, job.callers, before, after, self.plan.queues)
        if result.errors or result.timeouts:
            self.warnings.append(
                f"{rpc} ({type(job).__name__}, {job.callers} callers): {result.errors} errors, "
                f"{result.timeouts} timeouts, e.g. {result.error_sample}"
            )
        if result.items != self.plan.queues:
            self.warnings.append(
                f"{rpc} ({type(job).__name__}): {result.items} queues in the answer, "
                f"expected {self.plan.queues}"
            )
        return stats

    def page_encode(self) -> dict[str, Any]:
        """A ListJobs page of 100 jobs to JSON: the gateway's encoder beside json_format (gateway_encode)."""
        self.log(f"page encode: {self.plan.encode_samples} pages per side")
        pages = gateway_encode.fetch_pages(self.server.target, self.viewer_token, self.names)
        return gateway_encode.measure(pages, self.plan.encode_samples)

    def reads(self) -> dict[str, Any]:
        """GetOverview and ListQueues, one caller then `callers` callers, over gRPC then over HTTP."""
        plan, out = self.plan, dict[str, dict[str, Any]]()
        for rpc in ("overview", "queues"):
            out[rpc] = {}
            for load, callers, calls in (
                ("sequential", 1, plan.sequential_calls),
                ("concurrent", plan.callers, plan.calls_per_caller),
            ):
                self.log(f"{rpc}, {callers} caller(s): gRPC, then HTTP")
                out[rpc][load] = {
                    "grpc": self.case(
                        rpc,
                        GrpcReadJob(
                            self.server.target,
                            self.viewer_token,
                            rpc,
                            callers,
                            calls,
                            expected_items=plan.queues,
                        ),
                    ),
                    "http": self.case(
                        rpc,
                        read_job(
                            self.base_url,
                            self.viewer_token,
                            rpc,
                            callers=callers,
                            calls=calls,
                            queues=plan.queues,
                        ),
                    ),
                }
        return out

    # --- live stream ------------------------------------------------------------------------------------

    def beat(self, index: int) -> None:
        """One Beat of a worker never seen before: an ONLINE transition on WatchWorkers."""
        token = self.authority.mint(worker_id(index), "worker", worker=worker_id(index))
        with grpc.insecure_channel(self.server.target) as channel:
            hb_grpc.HeartbeatServiceStub(channel).Beat(
                hb_pb.BeatRequest(report=worker_report(index, 0)),
                metadata=(("authorization", f"Bearer {token}"),),
                timeout=10,
            )

    def stream(self) -> dict[str, Any]:
        """Idle server without clients (the baseline), then `sse_clients` streams open: idle, then
        worker transitions, each timed from the Beat to its arrival at every client."""
        plan = self.plan
        self.log(f"idle server, no stream clients, {plan.idle_s:g} s")
        baseline_before = self.sample()
        time.sleep(plan.idle_s)
        baseline_after = self.sample()
        self.log(f"opening {plan.sse_clients} stream clients")
        self.load.send(SseJob(self.base_url, self.viewer_token, plan.sse_clients))
        ready = self.load.receive(timeout=300)
        connected = self.sample()
        window_s = plan.idle_s + plan.transitions * plan.transition_gap_s + plan.settle_s
        self.load.send(Window(time.time(), time.time() + window_s))
        self.log(f"{ready.streams} streams open in {ready.open_s:.1f} s; idle {plan.idle_s:g} s")
        time.sleep(plan.idle_s)
        idle = self.sample()
        sent: dict[str, float] = {}
        for k in range(plan.transitions):
            index = 900_000 + k
            sent[worker_id(index)] = time.time()
            self.beat(index)
            time.sleep(plan.transition_gap_s)
        self.log("waiting for the last events")
        time.sleep(plan.settle_s)
        busy = self.sample()
        result: SseResult = self.load.receive(timeout=window_s + 120)
        closed = self.sample()
        self.server.check_alive()
        return report.stream_stats(
            result,
            sent,
            baseline_before=baseline_before,
            baseline_after=baseline_after,
            connected=connected,
            idle=idle,
            busy=busy,
            closed=closed,
        )

    def topology(self) -> dict[str, Any]:
        """Where everything ran."""
        info: dict[str, Any] = self.redis.info("server")
        return {
            "cpus": os.cpu_count(),
            "server_pid": self.server.proc.pid,
            "load_pid": self.load.pid,
            "grpc_target": self.server.target,
            "http_url": self.base_url,
            "redis": self.redis_kind,
            "redis_version": info.get("redis_version", "?"),
            "bull_prefix": self.bull_prefix,
            "suite_prefix": self.suite_prefix,
            "python": sys.version.split()[0],
            "redis_parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)",
        }


def run(plan: Plan) -> dict[str, Any]:
    """Every phase, in order; the dict is what goes to the JSON file."""
    with ExitStack() as stack:
        bench = Bench(plan, stack)
        results = {**record.run_header(plan), "topology": bench.topology()}
        results["workload"] = asdict(bench.populated)
        results["collect_now"] = bench.collect_now()
        results["rss_start_mb"] = bench.server.sample().rss / 2**20
        results["reads"] = bench.reads()
        results["page_encode"] = bench.page_encode()
        results["stream"] = bench.stream()
        bench.log("cleanup")
        results["warnings"] = bench.warnings + results["stream"]["warnings"]
        started = bench.started
    results["cleanup"] = bench.cleanup
    results["elapsed_s"] = time.time() - started
    report.derive(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    return text.main(
        "python -m bench.gateway",
        __doc__.split("\n")[0],
        plans=(FULL, QUICK),
        run=run,
        table=report.table,
        results_path=RESULTS,
        quick_help="small smoke run of a few seconds per phase",
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
