"""Load jobs of the MonitorService benchmark, run in a load-generator process (bench.client.serve).

Closed loop: each caller makes its next call when the previous one answered, so `callers` is the number
of calls in flight. gRPC callers use the generated MonitorService stub and deserialize every answer,
as a dashboard would; HTTP callers (bull-board, the gateway) parse every JSON body, inside the timing
too. Both kinds run the same path (`_drive`): a connection per caller, the same warm-up calls, every
connection open and answered before the timing, errors and time-outs counted beside the latencies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol

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
# Calls on the first caller's connection before the timing, for the gRPC and the HTTP side alike.
WARMUP_CALLS = 20


class WrongAnswer(ValueError):
    """An answer that parsed but does not hold what the run set up (too few queues, a short page)."""


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, grpc.aio.AioRpcError):
        return bool(exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED)
    return isinstance(exc, TimeoutError)


class Failures(Protocol):
    """Where a batch of calls counts what went wrong."""

    errors: int
    timeouts: int
    error_sample: str


def count_failure(into: Failures, exc: BaseException) -> None:
    """A failed call: a time-out or an error, the first one described."""
    if _timed_out(exc):
        into.timeouts += 1
    else:
        into.errors += 1
    into.error_sample = into.error_sample or _describe(exc)


async def _caller(
    call: Call, calls: int, until: float, result: CallsResult, expected_items: int = -1
) -> None:
    done = 0
    while (done < calls) if not until else (time.perf_counter() < until):
        done += 1
        sent = time.perf_counter()
        try:
            items, size = await call()
            if expected_items >= 0 and items != expected_items:
                raise WrongAnswer(f"{items} items in the answer, expected {expected_items}")
        # ValueError: a body that is not the JSON expected, or a wrong answer; an error, not a crash.
        except (grpc.aio.AioRpcError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            count_failure(result, exc)
            continue
        result.latencies_ms.append((time.perf_counter() - sent) * 1000.0)
        result.items, result.response_bytes = items, size


async def _warm_up(calls: list[Call], warmup_calls: int) -> None:
    """`warmup_calls` calls on the first caller's connection, then one on every caller's at once, so
    that every connection is open and has answered a call before the timing starts (HTTP clients
    connect on their first request; a connection opened inside the timing would be counted)."""
    warm = CallsResult()
    await _caller(calls[0], warmup_calls, 0.0, warm)
    await asyncio.gather(*(_caller(call, 1, 0.0, warm) for call in calls))


async def _drive(
    conn: Connection,
    calls: list[Call],
    calls_per_caller: int,
    *,
    duration_s: float,
    warmup_calls: int,
    expected_items: int,
) -> CallsResult:
    """Warm up, wait for the go, then every caller in a closed loop; the one path of gRPC and HTTP."""
    await _warm_up(calls, warmup_calls)
    # The window is only a go signal: the orchestrator samples the server around the whole batch.
    await _await_window(conn, Ready())
    result = CallsResult()
    cpu, began = time.process_time(), time.perf_counter()
    until = began + duration_s if duration_s else 0.0
    await asyncio.gather(*(_caller(call, calls_per_caller, until, result, expected_items) for call in calls))
    result.seconds = time.perf_counter() - began
    result.client_cpu_s = time.process_time() - cpu
    return result


@dataclass(frozen=True, slots=True)
class GrpcReadJob:
    """`callers` closed-loop callers of GetOverview, ListQueues or ListJobs (first page of `queue`'s
    completed jobs), each making `calls_per_caller` calls, or calling for `duration_s` when set; an
    answer without `expected_items` items (queues, or jobs on the page) counts as an error when set."""

    target: str
    token: str
    rpc: str
    callers: int
    calls_per_caller: int
    duration_s: float = 0.0
    queue: str = ""
    page_size: int = 50
    expected_items: int = -1
    warmup_calls: int = WARMUP_CALLS

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
            return await _drive(
                conn,
                calls,
                self.calls_per_caller,
                duration_s=self.duration_s,
                warmup_calls=self.warmup_calls,
                expected_items=self.expected_items,
            )
        finally:
            await _close(channels)


async def get_json(session: aiohttp.ClientSession, url: str, items_key: str) -> tuple[int, int]:
    """GET a JSON answer and parse it: (its `items_key`, a list's length or a number; its bytes); an
    answer other than 200 raises."""
    async with session.get(url) as response:
        body = await response.read()
        if response.status != 200:
            raise aiohttp.ClientResponseError(
                response.request_info, (), status=response.status, message=body[:200].decode()
            )
    answer: dict[str, Any] = json.loads(body)
    value = answer.get(items_key)
    return (len(value) if isinstance(value, list) else int(value or 0)), len(body)


@dataclass(frozen=True, slots=True)
class HttpReadJob:
    """`callers` closed-loop callers of one GET URL answering JSON, each making `calls_per_caller` calls
    on a keep-alive connection of its own; every answer is parsed inside the timing (as the gRPC stub
    deserializes its answer), and its `items_key` (a list or a number) gives its items."""

    url: str
    callers: int
    calls_per_caller: int
    items_key: str
    token: str = ""
    expected_items: int = -1
    warmup_calls: int = WARMUP_CALLS

    def _call(self, session: aiohttp.ClientSession) -> Call:
        async def get() -> tuple[int, int]:
            return await get_json(session, self.url, self.items_key)

        return get

    async def run(self, conn: Connection) -> CallsResult:
        """A session of one connection per caller (as a channel per caller on the gRPC side), warm up,
        wait for the go, call."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout, headers=headers)
            for _ in range(self.callers)
        ]
        try:
            calls = [self._call(session) for session in sessions]
            return await _drive(
                conn,
                calls,
                self.calls_per_caller,
                duration_s=0.0,
                warmup_calls=self.warmup_calls,
                expected_items=self.expected_items,
            )
        finally:
            await asyncio.gather(*(session.close() for session in sessions))
