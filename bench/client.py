"""The load-generator process: runs the jobs the orchestrator sends over a pipe, one at a time.

A load job first gets ready (builds its messages, connects, opens its streams), says so with a `Ready`
message, then waits for the measurement `Window` so that every client process, and the orchestrator
sampling the server's CPU, count exactly the same seconds.

Beats go out pre-serialized and come back as raw bytes: the load generator shares the machine with
the server, so it spends no CPU on protobuf or client interceptors. The server receives the same bytes
and `authorization` header a generated stub would send. Reads use the generated stub, as a dashboard
would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Protocol, runtime_checkable

import grpc
import redis

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.redis_store import connect
from workermon_core.targets import channel_target
from workermon_heartbeat import scripts
from workermon_heartbeat.store import beat_arguments, beat_header, registry_root

from . import workload
from .server import bench_registry, bench_registry_config

BEAT_METHOD = "/workermon.heartbeat.v1.HeartbeatService/Beat"
BEAT_STREAM_METHOD = "/workermon.heartbeat.v1.HeartbeatService/BeatStream"
CALL_TIMEOUT_S = 30.0
# Separate connections per channel: without a local pool grpc shares one subchannel between channels
# to the same target, and "a few channels" would be one TCP connection.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
Metadata = tuple[tuple[str, str], ...]


# --- messages between the orchestrator and this process ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    """Wall-clock seconds (time.time()) between which completed calls are counted."""

    start_at: float
    end_at: float
    # Calls completing before this time are counted apart, as a warm-up inside the window (0: none).
    warmup_until: float = 0.0


@dataclass(frozen=True, slots=True)
class UnaryJob:
    """Unary calls for workers [first, first + count) with `concurrency` in flight, or at `rate`/s."""

    target: str  # one server, or replicas as `ip:port,ip:port` (each channel round-robins over them)
    method: str
    token: str
    first: int
    count: int
    concurrency: int
    channels: int
    rate: float = 0.0  # 0: closed loop, as fast as the in-flight bound allows
    max_in_flight: int = 2000  # open loop only: beyond it a beat is dropped, not queued


@dataclass(frozen=True, slots=True)
class StreamJob:
    """One BeatStream per worker in [first, first + count), `concurrency` beats in flight across them."""

    target: str
    token: str
    first: int
    count: int
    concurrency: int
    channels: int


@dataclass(frozen=True, slots=True)
class StoreJob:
    """Registry.beat called directly, without gRPC: what the store layer alone costs per beat."""

    redis_url: str
    prefix: str
    first: int
    count: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class ReadJob:
    """`callers` concurrent callers, each making `calls_per_caller` calls of ListWorkers (first page of
    `page_size`) or GetWorkerSummary, after a warm-up."""

    target: str
    token: str
    rpc: str  # "list" or "summary"
    page_size: int
    callers: int
    calls_per_caller: int
    warmup_calls: int = 20


@dataclass(frozen=True, slots=True)
class RegisterJob:
    """Register workers [first, first + count) through the Beat script, pipelined."""

    redis_url: str
    prefix: str
    first: int
    count: int
    batch: int = 1000


@dataclass(frozen=True, slots=True)
class Ready:
    """A load job is connected and idle, waiting for its window."""

    streams: int = 0
    open_s: float = 0.0
    open_errors: int = 0
    open_error_sample: str = ""


@dataclass(slots=True)
class LoadResult:
    """What one process saw within the window."""

    completed: int
    errors: int
    latencies_ms: list[float]
    client_cpu_s: float
    dropped: int = 0
    error_sample: str = ""
    warmup: LoadResult | None = None  # what completed before the window's warmup_until


@dataclass(slots=True)
class ReadResult:
    """Latencies in milliseconds, wall seconds for all calls, and what the last answer held (workers on
    the page, or online + offline of the summary) so the orchestrator can check the registry."""

    latencies_ms: list[float]
    seconds: float
    items: int


@dataclass(frozen=True, slots=True)
class RegisterResult:
    registered: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Failed:
    """The job raised; the orchestrator re-raises with this traceback."""

    trace: str


@runtime_checkable
class SelfRunningJob(Protocol):
    """A job defined in another benchmark module that brings its own coroutine: run() gets the pipe
    to send `Ready` on and to receive its `Window` from, and returns what goes back."""

    async def run(self, conn: Connection) -> object: ...


Job = UnaryJob | StreamJob | StoreJob | ReadJob | RegisterJob | SelfRunningJob


# --- measurement -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Meter:
    """Counts calls completing inside the window; latencies in ms on the perf_counter clock."""

    start: float
    end: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0
    error_sample: str = ""
    cpu_s: float = 0.0
    warmup: Meter | None = None  # counts the calls completing in the window's warm-up

    @classmethod
    def for_window(cls, window: Window) -> Meter:
        # Translate the shared wall-clock window to this process's monotonic clock once.
        offset = time.time() - time.perf_counter()
        meter = cls(start=window.start_at - offset, end=window.end_at - offset)
        if window.warmup_until:
            meter.warmup = cls(start=meter.start, end=window.warmup_until - offset)
        return meter

    def over(self) -> bool:
        return time.perf_counter() >= self.end

    def _inside(self, now: float) -> bool:
        return self.start <= now <= self.end

    def _counting(self, now: float) -> Meter:
        return self.warmup if self.warmup is not None and now < self.warmup.end else self

    def ok(self, sent: float) -> None:
        now = time.perf_counter()
        if self._inside(now):
            self._counting(now).latencies_ms.append((now - sent) * 1000.0)

    def failed(self, exc: BaseException) -> None:
        now = time.perf_counter()
        if self._inside(now):
            meter = self._counting(now)
            meter.errors += 1
            meter.error_sample = meter.error_sample or _describe(exc)

    def drop(self) -> None:
        now = time.perf_counter()
        if self._inside(now):
            self._counting(now).dropped += 1

    async def watch_cpu(self) -> None:
        """This process's CPU time (every thread, grpc's included) over the window."""
        await asyncio.sleep(max(0.0, self.start - time.perf_counter()))
        before = time.process_time()
        await asyncio.sleep(max(0.0, self.end - time.perf_counter()))
        self.cpu_s = time.process_time() - before

    def result(self) -> LoadResult:
        return LoadResult(
            completed=len(self.latencies_ms),
            errors=self.errors,
            latencies_ms=self.latencies_ms,
            client_cpu_s=self.cpu_s,
            dropped=self.dropped,
            error_sample=self.error_sample,
            warmup=self.warmup.result() if self.warmup is not None else None,
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return repr(exc)


def _metadata(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def _channel_options(balanced: bool) -> list[tuple[str, Any]]:
    # Replicas are balanced per call, as the suite's own clients do it (workermon_core.client).
    return [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")] if balanced else CHANNEL_OPTIONS


async def _connect(target: str, count: int) -> list[Any]:
    """`count` channels to one server, or to replicas named as `ip:port,ip:port` (round-robin)."""
    resolved, balanced = channel_target(target)
    options = _channel_options(balanced)
    channels = [grpc.aio.insecure_channel(resolved, options=options) for _ in range(count)]
    await asyncio.gather(*(c.channel_ready() for c in channels))
    return channels


async def _close(channels: Sequence[Any]) -> None:
    await asyncio.gather(*(c.close() for c in channels))


async def _await_window(conn: Connection, ready: Ready) -> Meter:
    conn.send(ready)
    window: Window = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    return Meter.for_window(window)


# --- unary -------------------------------------------------------------------------------------------


async def _closed_loop(
    calls: list[Any], messages: list[bytes], md: Metadata, job: UnaryJob, meter: Meter
) -> None:
    sequence = itertools.count()

    async def driver(slot: int) -> None:
        call = calls[slot % len(calls)]
        while not meter.over():
            message = messages[next(sequence) % len(messages)]
            sent = time.perf_counter()
            try:
                await call(message, metadata=md, timeout=CALL_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                meter.failed(exc)
                continue
            meter.ok(sent)

    await asyncio.gather(meter.watch_cpu(), *(driver(k) for k in range(job.concurrency)))


async def _open_loop(
    calls: list[Any], messages: list[bytes], md: Metadata, job: UnaryJob, meter: Meter
) -> None:
    """Send at a fixed rate whatever the answers do; latency counts from the scheduled send time, so a
    slow server cannot hide its queueing by slowing the sender down."""
    interval = 1.0 / job.rate
    in_flight: set[asyncio.Task[None]] = set()

    async def one(message: bytes, call: Any, scheduled: float) -> None:
        try:
            await call(message, metadata=md, timeout=CALL_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            meter.failed(exc)
            return
        meter.ok(scheduled)

    cpu = asyncio.create_task(meter.watch_cpu())
    began, sent = time.perf_counter(), 0
    while not meter.over():
        due = int((time.perf_counter() - began) / interval) + 1
        while sent < due:
            if len(in_flight) >= job.max_in_flight:
                meter.drop()
            else:
                task = asyncio.create_task(
                    one(messages[sent % len(messages)], calls[sent % len(calls)], began + sent * interval)
                )
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            sent += 1
        await asyncio.sleep(max(0.0, began + sent * interval - time.perf_counter()))
    await asyncio.gather(cpu, *in_flight)


async def _unary(job: UnaryJob, conn: Connection) -> LoadResult:
    messages = workload.beat_messages(job.first, job.count)
    channels = await _connect(job.target, job.channels)
    try:
        calls = [c.unary_unary(job.method) for c in channels]
        meter = await _await_window(conn, Ready())
        drive = _open_loop if job.rate else _closed_loop
        await drive(calls, messages, _metadata(job.token), job, meter)
        return meter.result()
    finally:
        await _close(channels)


# --- store only ------------------------------------------------------------------------------------


async def _store(job: StoreJob, conn: Connection) -> LoadResult:
    # The registry is configured exactly as the server's.
    reports = [
        workload.report(i, v)
        for v in range(workload.VARIANTS)
        for i in range(job.first, job.first + job.count)
    ]
    redis_client = connect(job.redis_url)
    try:
        registry = bench_registry(redis_client, job.prefix)
        await redis_client.ping()
        meter = await _await_window(conn, Ready())
        sequence = itertools.count()

        async def driver() -> None:
            while not meter.over():
                rep = reports[next(sequence) % len(reports)]
                sent = time.perf_counter()
                try:
                    await registry.beat(rep, [])
                except redis.RedisError as exc:
                    meter.failed(exc)
                    continue
                meter.ok(sent)

        await asyncio.gather(meter.watch_cpu(), *(driver() for _ in range(job.concurrency)))
        return meter.result()
    finally:
        await redis_client.aclose()


# --- streams -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Stream:
    call: Any
    messages: list[bytes]
    beats: int = 0

    def next_message(self) -> bytes:
        self.beats += 1
        return self.messages[self.beats % len(self.messages)]

    async def beat(self, message: bytes) -> None:
        await self.call.write(message)
        if await self.call.read() is grpc.aio.EOF:
            raise ConnectionError("stream ended by the server")


async def _open_streams(job: StreamJob, methods: list[Any], md: Metadata) -> tuple[list[_Stream], list[str]]:
    """Open every stream and send its first beat, so the server holds the worker's stream state."""
    # As many first beats in flight as beats later on: more would grow the server's Redis pool (a
    # connection per concurrent command) and that memory would be counted against the streams.
    gate = asyncio.Semaphore(job.concurrency)

    async def open_one(k: int) -> _Stream:
        index = job.first + k
        messages = [workload.beat_bytes(index, v) for v in range(workload.VARIANTS)]
        # The call starts inside the gate: grpc core cancels calls beyond its pending-call limit
        # (grpc.server.max_pending_requests, 1000) when they arrive faster than the server's event
        # loop accepts them, and a burst is not what this phase measures.
        async with gate:
            stream = _Stream(methods[k % len(methods)](metadata=md), messages)
            await stream.beat(messages[0])
        return stream

    outcomes = await asyncio.gather(*(open_one(k) for k in range(job.count)), return_exceptions=True)
    streams = [s for s in outcomes if isinstance(s, _Stream)]
    return streams, [_describe(e) for e in outcomes if isinstance(e, BaseException)]


async def _drive_streams(streams: list[_Stream], concurrency: int, meter: Meter) -> None:
    # Round-robin over idle streams: with far more streams than beats in flight, every stream
    # beats in turn, as a fleet on a fixed interval does.
    idle = deque(streams)

    async def driver() -> None:
        while idle and not meter.over():
            stream = idle.popleft()
            message = stream.next_message()
            sent = time.perf_counter()
            try:
                await stream.beat(message)
            except (grpc.aio.AioRpcError, ConnectionError) as exc:
                meter.failed(exc)  # a broken stream is not put back
                continue
            meter.ok(sent)
            idle.append(stream)

    await asyncio.gather(meter.watch_cpu(), *(driver() for _ in range(min(concurrency, len(streams)))))


async def _end_streams(streams: list[_Stream]) -> None:
    """Half-close every stream and let the server finish each handler, as a clean worker exit does."""
    await asyncio.gather(*(s.call.done_writing() for s in streams), return_exceptions=True)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.call.code() for s in streams)), timeout=20.0)
    except TimeoutError:
        for stream in streams:
            stream.call.cancel()


async def _streams(job: StreamJob, conn: Connection) -> LoadResult:
    channels = await _connect(job.target, job.channels)
    try:
        methods = [c.stream_stream(BEAT_STREAM_METHOD) for c in channels]
        began = time.perf_counter()
        streams, failures = await _open_streams(job, methods, _metadata(job.token))
        ready = Ready(
            streams=len(streams),
            open_s=time.perf_counter() - began,
            open_errors=len(failures),
            open_error_sample=failures[0] if failures else "",
        )
        meter = await _await_window(conn, ready)
        await _drive_streams(streams, job.concurrency, meter)
        await _end_streams(streams)
        return meter.result()
    finally:
        await _close(channels)


# --- reads -------------------------------------------------------------------------------------------


def _read_call(job: ReadJob, stub: Any, md: Metadata) -> Callable[[], Awaitable[Any]]:
    if job.rpc == "summary":
        request: Any = pb.GetWorkerSummaryRequest()
        return lambda: stub.GetWorkerSummary(request, metadata=md)
    request = pb.ListWorkersRequest(page_size=job.page_size)
    return lambda: stub.ListWorkers(request, metadata=md)


def _items(answer: Any) -> int:
    if isinstance(answer, pb.GetWorkerSummaryResponse):
        return int(answer.online + answer.offline)
    return len(answer.workers)


async def _caller(calls: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    latencies, answer = [], None
    for _ in range(calls):
        sent = time.perf_counter()
        answer = await call()
        latencies.append((time.perf_counter() - sent) * 1000.0)
    return latencies, answer


async def _read(job: ReadJob, conn: Connection) -> ReadResult:
    # A channel per caller: separate dashboards, separate connections.
    channels = await _connect(job.target, job.callers)
    try:
        md = _metadata(job.token)
        calls = [_read_call(job, pb_grpc.HeartbeatServiceStub(c), md) for c in channels]
        await _caller(job.warmup_calls, calls[0])
        await _await_window(conn, Ready())  # the window is only a go signal: these runs are counted
        began = time.perf_counter()
        outcomes = await asyncio.gather(*(_caller(job.calls_per_caller, call) for call in calls))
        return ReadResult(
            latencies_ms=[ms for latencies, _ in outcomes for ms in latencies],
            seconds=time.perf_counter() - began,
            items=_items(outcomes[0][1]),
        )
    finally:
        await _close(channels)


# --- registration ------------------------------------------------------------------------------------


def _register(job: RegisterJob) -> RegisterResult:
    """Pipelined EVALSHA of the service's own Beat script: the registry ends up as if each worker had
    beaten once, without paying a gRPC round trip per worker (registration is not what is measured).
    The argument list is Registry.beat's; the orchestrator checks the result with GetWorkerSummary."""
    config = bench_registry_config()
    root = registry_root(job.prefix)
    client = redis.Redis.from_url(job.redis_url)
    began = time.perf_counter()
    try:
        sha = client.script_load(scripts.BEAT)
        end = job.first + job.count
        for start in range(job.first, end, job.batch):
            pipe = client.pipeline(transaction=False)
            header = beat_header(root, config, int(time.time() * 1000), 1)
            for index in range(start, min(start + job.batch, end)):
                args = header + beat_arguments(workload.report(index, 0), [])
                pipe.evalsha(sha, 1, root + ":ids", *args)
            pipe.execute()
    finally:
        client.close()
    return RegisterResult(registered=job.count, seconds=time.perf_counter() - began)


# --- process -----------------------------------------------------------------------------------------


async def _run(job: Job, conn: Connection) -> object:
    if isinstance(job, SelfRunningJob):
        return await job.run(conn)
    if isinstance(job, UnaryJob):
        return await _unary(job, conn)
    if isinstance(job, StreamJob):
        return await _streams(job, conn)
    if isinstance(job, StoreJob):
        return await _store(job, conn)
    if isinstance(job, ReadJob):
        return await _read(job, conn)
    return _register(job)


def serve(conn: Connection) -> None:
    """Process entry: run jobs until a None arrives. One event loop for the life of the process."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        while (job := conn.recv()) is not None:
            try:
                outcome: object = loop.run_until_complete(_run(job, conn))
            except Exception:
                outcome = Failed(traceback.format_exc())
            conn.send(outcome)
    finally:
        loop.close()
