"""Load jobs of the MonitorService benchmark, run in a load-generator process (bench.client.serve).

Closed loop: each caller makes its next call when the previous one answered, so `callers` is the number
of calls in flight. gRPC callers use the generated MonitorService stub and deserialize every answer,
as a dashboard would; HTTP callers (bull-board) read every body. Each caller has its own connection.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import aiohttp
import grpc

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc

from .client import CALL_TIMEOUT_S, Ready, _await_window, _close, _connect, _describe, _metadata

RPCS = ("overview", "queues", "jobs")


@dataclass(slots=True)
class CallsResult:
    """Latencies of the calls that answered, and what went wrong with the others."""

    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    timeouts: int = 0
    error_sample: str = ""
    items: int = 0  # queues (ListQueues, bull-board), queues_total (GetOverview) or jobs (ListJobs)
    response_bytes: int = 0
    client_cpu_s: float = 0.0


Call = Callable[[], Awaitable[tuple[int, int]]]  # -> (items, response bytes)


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, grpc.aio.AioRpcError):
        return bool(exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED)
    return isinstance(exc, TimeoutError)


async def _caller(call: Call, calls: int, until: float, result: CallsResult) -> None:
    done = 0
    while (done < calls) if not until else (time.perf_counter() < until):
        done += 1
        sent = time.perf_counter()
        try:
            result.items, result.response_bytes = await call()
        except (grpc.aio.AioRpcError, aiohttp.ClientError, TimeoutError) as exc:
            if _timed_out(exc):
                result.timeouts += 1
            else:
                result.errors += 1
            result.error_sample = result.error_sample or _describe(exc)
            continue
        result.latencies_ms.append((time.perf_counter() - sent) * 1000.0)


async def _drive(
    conn: Connection,
    calls: list[Call],
    calls_per_caller: int,
    duration_s: float,
    warmup_calls: int,
) -> CallsResult:
    warm = CallsResult()
    await _caller(calls[0], warmup_calls, 0.0, warm)
    # The window is only a go signal: the orchestrator samples the server around the whole batch.
    await _await_window(conn, Ready())
    result = CallsResult()
    cpu, began = time.process_time(), time.perf_counter()
    until = began + duration_s if duration_s else 0.0
    await asyncio.gather(*(_caller(call, calls_per_caller, until, result) for call in calls))
    result.seconds = time.perf_counter() - began
    result.client_cpu_s = time.process_time() - cpu
    return result


@dataclass(frozen=True, slots=True)
class GrpcReadJob:
    """`callers` closed-loop callers of GetOverview, ListQueues or ListJobs (first page of `queue`'s
    completed jobs), each making `calls_per_caller` calls, or calling for `duration_s` when set."""

    target: str
    token: str
    rpc: str
    callers: int
    calls_per_caller: int
    duration_s: float = 0.0
    queue: str = ""
    page_size: int = 50
    warmup_calls: int = 20

    def _call(self, stub: pb_grpc.MonitorServiceStub) -> Call:
        md = _metadata(self.token)
        if self.rpc == "overview":
            overview = pb.GetOverviewRequest()

            async def get_overview() -> tuple[int, int]:
                reply = await stub.GetOverview(overview, metadata=md, timeout=CALL_TIMEOUT_S)
                return reply.queues_total, reply.ByteSize()

            return get_overview
        if self.rpc == "queues":
            queues = pb.ListQueuesRequest()

            async def list_queues() -> tuple[int, int]:
                reply = await stub.ListQueues(queues, metadata=md, timeout=CALL_TIMEOUT_S)
                return len(reply.queues), reply.ByteSize()

            return list_queues
        jobs = pb.ListJobsRequest(queue=self.queue, states=[pb.JOB_STATE_COMPLETED], page_size=self.page_size)

        async def list_jobs() -> tuple[int, int]:
            reply = await stub.ListJobs(jobs, metadata=md, timeout=CALL_TIMEOUT_S)
            return len(reply.jobs), reply.ByteSize()

        return list_jobs

    async def run(self, conn: Connection) -> CallsResult:
        """Connect one channel per caller, warm up, wait for the go, call."""
        if self.rpc not in RPCS:
            raise ValueError(f"rpc must be one of {RPCS}, not {self.rpc!r}")
        channels = await _connect(self.target, self.callers)
        try:
            calls = [self._call(pb_grpc.MonitorServiceStub(c)) for c in channels]
            return await _drive(conn, calls, self.calls_per_caller, self.duration_s, self.warmup_calls)
        finally:
            await _close(channels)


@dataclass(frozen=True, slots=True)
class HttpReadJob:
    """`callers` closed-loop HTTP clients of one GET URL, each making `calls_per_caller` calls with a
    per-request timeout."""

    url: str
    callers: int
    calls_per_caller: int
    timeout_s: float = 30.0
    warmup_calls: int = 3

    async def run(self, conn: Connection) -> CallsResult:
        """One session with a connection per caller, warm up, wait for the go, call."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.callers, force_close=False)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def get() -> tuple[int, int]:
                async with session.get(self.url) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise aiohttp.ClientResponseError(
                            response.request_info, (), status=response.status, message=body[:200].decode()
                        )
                return -1, len(body)

            result = await _drive(conn, [get] * self.callers, self.calls_per_caller, 0.0, self.warmup_calls)
            # Parsed once, outside the timed calls: how many queues the answer lists.
            if result.latencies_ms:
                async with session.get(self.url) as response:
                    answer: Any = json.loads(await response.read())
                result.items = len(answer.get("queues", []))
            return result
