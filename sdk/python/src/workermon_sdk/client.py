"""Heartbeat client: reports a worker to the Worker Monitor heartbeat service and carries out its commands."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from types import TracebackType
from typing import Any, Self, TypeAlias

import grpc
import psutil

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb2
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_sdk.backoff import Backoff
from workermon_sdk.timings import TimingRecorder

logger = logging.getLogger("workermon_sdk")

try:
    __version__ = metadata.version("workermon-sdk")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

SDK_NAME = f"workermon-sdk-python/{__version__}"

WorkerCommand: TypeAlias = hb_pb2.WorkerCommand
CommandAck: TypeAlias = hb_pb2.CommandAck
CommandHandler: TypeAlias = Callable[[WorkerCommand], Awaitable[tuple[bool, str]]]

# Limits the service enforces on a report; anything beyond them would get every beat refused.
MAX_QUEUES = 64
MAX_LABELS = 32
MAX_ACTIVE_JOB_IDS = 1000
MAX_ACKS_PER_BEAT = 100
MAX_RESULT_CHARS = 1000
MAX_REDIS_CLIENTS = 16
LAG_PROBE_SECONDS = 0.25
"""How often the event loop's lateness is measured (a sleep that should last this long)."""
_WORKER_ID_RE = re.compile(r"^[A-Za-z0-9._:@/-]{1,200}$")

# gRPC's own reconnect backoff (default: 1 s growing to 120 s) decides when a lost connection is tried
# again, whatever the client's backoff; capped here so the channel finds a returning service within ~3 s.
# Refused connection attempts to a service that is down cost next to nothing. channel_options override.
RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 3000),
)

# Codes that a retry will not fix on its own: someone has to change a token, a role or the SDK.
_OPERATOR_CODES = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)


class WorkerState(enum.IntEnum):
    """What the worker says it is doing (same numbers as ``workermon.heartbeat.v1.WorkerState``)."""

    UNSPECIFIED = 0
    RUNNING = 1
    QUIET = 2
    STOPPING = 3


class CommandType(enum.IntEnum):
    """What a command asks for (same numbers as ``workermon.heartbeat.v1.CommandType``)."""

    UNSPECIFIED = 0
    QUIET = 1
    RESUME = 2
    STOP = 3
    CANCEL_JOB = 4


@dataclass(frozen=True, slots=True)
class WorkerStats:
    """The live numbers a worker reports on every beat."""

    active_jobs: int = 0
    processed_total: int = 0
    failed_total: int = 0
    active_job_ids: Sequence[str] = ()
    state: WorkerState = WorkerState.RUNNING
    gauges: Mapping[str, float] = field(default_factory=dict)
    redis_clients: Sequence[tuple[int, str]] = ()
    """(id, addr) of the worker's own Redis connections, as CLIENT INFO gives them."""


class CommandLedger:
    """Remembers recent command ids and the acks not yet confirmed by the service, both bounded.

    An ack is sent on every beat until a response arrives after the beat that carried it, so the service
    may see an ack more than once and must treat repeats as no-ops.
    """

    def __init__(self, max_remembered: int = 1000, max_unconfirmed: int = MAX_ACKS_PER_BEAT) -> None:
        self._max_remembered = max_remembered
        self._max_unconfirmed = max_unconfirmed
        # command id -> its ack, or None while the command is still being carried out
        self._seen: OrderedDict[str, CommandAck | None] = OrderedDict()
        # command id -> (ack, sent since the last confirmation)
        self._unconfirmed: OrderedDict[str, tuple[CommandAck, bool]] = OrderedDict()

    def admit(self, command_id: str) -> bool:
        """Return True if the command is new and should be carried out; False for a repeat."""
        if command_id in self._seen:
            return False
        self._seen[command_id] = None
        while len(self._seen) > self._max_remembered:
            self._seen.popitem(last=False)
        return True

    def resend(self, command_id: str) -> bool:
        """Queue the ack of an answered command again; True if it was not already waiting.

        A command delivered again after it was answered means the service did not get the ack.
        """
        ack = self._seen.get(command_id)
        if ack is None or command_id in self._unconfirmed:
            return False
        self._enqueue(ack)
        return True

    def complete(self, command_id: str, ok: bool, result: str) -> CommandAck:
        """Record the outcome of a command and queue its ack."""
        ack = hb_pb2.CommandAck(command_id=command_id, ok=ok, result=result[:MAX_RESULT_CHARS])
        if command_id in self._seen:
            self._seen[command_id] = ack
        self._enqueue(ack)
        return ack

    def outgoing(self) -> list[CommandAck]:
        """Return every unconfirmed ack, to be sent on the next beat, and mark them as sent."""
        for command_id, (ack, _) in self._unconfirmed.items():
            self._unconfirmed[command_id] = (ack, True)
        return [ack for ack, _ in self._unconfirmed.values()]

    def confirm(self) -> None:
        """Forget the acks sent before a response from the service arrived."""
        for command_id in [cid for cid, (_, sent) in self._unconfirmed.items() if sent]:
            del self._unconfirmed[command_id]

    @property
    def unconfirmed(self) -> int:
        """Number of acks waiting to be confirmed."""
        return len(self._unconfirmed)

    @property
    def remembered(self) -> int:
        """Number of command ids remembered for de-duplication."""
        return len(self._seen)

    def _enqueue(self, ack: CommandAck) -> None:
        self._unconfirmed.pop(ack.command_id, None)
        self._unconfirmed[ack.command_id] = (ack, False)
        while len(self._unconfirmed) > self._max_unconfirmed:
            self._unconfirmed.popitem(last=False)


class _RateLimitedLog:
    """Logs a repeating failure at most once per interval, counting what it held back."""

    def __init__(self) -> None:
        self._last = -float("inf")
        self._suppressed = 0

    def log(self, interval: float, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < interval:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, self._suppressed)
        logger.log(level, msg, *args)
        self._last = now
        self._suppressed = 0


class _StreamLost(ConnectionError):
    """The BeatStream ended or went silent without a gRPC error."""


def default_worker_id() -> str:
    """Return ``<hostname>-<pid>`` with any character the service does not accept replaced by ``-``."""
    raw = f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9._:@/-]", "-", raw)[-200:]


class HeartbeatClient:
    """Beats to the heartbeat service in the background and hands the commands it receives to a handler.

    The client never raises into the worker and never blocks it: when the service (or its Redis) is down
    it logs, backs off with full jitter and reconnects, while the worker carries on.
    """

    log_interval: float = 30.0
    """Seconds between two log lines about the same ongoing connection trouble."""

    def __init__(
        self,
        target: str,
        token: str | Callable[[], str],
        *,
        worker_id: str | None = None,
        queues: Sequence[str] = (),
        labels: Mapping[str, str] | None = None,
        version: str = "",
        concurrency: int = 1,
        report: Callable[[], WorkerStats] | None = None,
        command_handler: CommandHandler | None = None,
        use_stream: bool = True,
        credentials: grpc.ChannelCredentials | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        backoff: Backoff | None = None,
        beat_interval: float = 10.0,
        rpc_timeout: float = 10.0,
        goodbye_timeout: float = 2.0,
    ) -> None:
        """Configure the client; nothing connects until :meth:`start`.

        ``token`` is a JWT with the ``worker`` role, or a callable returning a fresh one (called on every
        connect and every unary call). ``report`` is called on every beat for the live numbers.
        ``command_handler`` carries out one command and returns ``(ok, result sentence)``.
        ``beat_interval`` is only used until the service states its own. ``backoff`` paces retries after
        a failure (default 0.5 s doubling to 5 s, full jitter); after a lost connection the client
        retries as soon as the channel is READY again, which gRPC checks at least every 3 s
        (``RECONNECT_OPTIONS``; ``channel_options`` may set others).
        """
        self.worker_id = worker_id if worker_id is not None else default_worker_id()
        if not _WORKER_ID_RE.match(self.worker_id):
            raise ValueError(
                f"invalid worker_id {self.worker_id!r}: use 1-200 letters, digits or . _ : @ / -"
            )
        if len(queues) > MAX_QUEUES:
            raise ValueError(f"a worker may report at most {MAX_QUEUES} queues, got {len(queues)}")
        if labels is not None and len(labels) > MAX_LABELS:
            raise ValueError(f"a worker may report at most {MAX_LABELS} labels, got {len(labels)}")
        self.target = target
        self.queues = list(queues)
        self.labels = dict(labels or {})
        self.version = version
        self.concurrency = concurrency
        self.instance_id = str(uuid.uuid4())
        self.hostname = socket.gethostname()
        self.pid = os.getpid()

        self._token = token
        self._report = report
        self._handler = command_handler
        self._use_stream = use_stream
        self._credentials = credentials
        given = {name for name, _ in channel_options}
        self._channel_options = [o for o in RECONNECT_OPTIONS if o[0] not in given] + list(channel_options)
        self._backoff = backoff or Backoff()
        self._interval = beat_interval
        self._rpc_timeout = rpc_timeout
        self._goodbye_timeout = goodbye_timeout

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading is meaningless; start the clock now
        try:
            self._started_at = self._process.create_time()
        except psutil.Error:
            self._started_at = time.time()
        self._last_stats = WorkerStats()

        self._ledger = CommandLedger()
        self._commands: asyncio.Queue[WorkerCommand] = asyncio.Queue(maxsize=MAX_ACKS_PER_BEAT)
        self._wake = asyncio.Event()
        self._rearm = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._failures = 0
        self._last_response = 0.0
        self._failure_log = _RateLimitedLog()
        self._report_log = _RateLimitedLog()
        self._lag_ms = 0.0

        self.connected = False
        """True while the last exchange with the service succeeded."""
        self.last_error: BaseException | None = None
        """The most recent failure talking to the service (kept after a recovery)."""
        self.beats_sent = 0
        """Beats handed to the service without error."""
        self.beats_failed = 0
        """Beats that could not be sent."""
        self.commands_received = 0
        """Distinct commands received (repeats excluded)."""
        self.timings = TimingRecorder()
        """Durations of finished jobs waiting to go out with a beat (see :meth:`record_job`)."""

    @property
    def beat_interval(self) -> float:
        """Seconds between beats, as last stated by the service."""
        return self._interval

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._tasks) and not self._stopping

    async def start(self) -> None:
        """Start beating in the background; returns at once, whether or not the service is reachable."""
        if self._tasks:
            return
        self._stopping = False
        if self._credentials is not None:
            self._channel = grpc.aio.secure_channel(self.target, self._credentials, self._channel_options)
        else:
            self._channel = grpc.aio.insecure_channel(self.target, self._channel_options)
        self._stub = hb_grpc.HeartbeatServiceStub(self._channel)
        self._tasks = [
            asyncio.create_task(self._beat_forever(), name="workermon-heartbeat"),
            asyncio.create_task(self._run_commands(), name="workermon-commands"),
            asyncio.create_task(self._probe_lag(), name="workermon-loop-lag"),
        ]

    async def stop(self, goodbye: bool = True, reason: str = "shutdown") -> None:
        """Stop beating, deliver pending acks, say goodbye and close the channel. Never raises.

        Talking to the service is bounded by ``goodbye_timeout`` in all, so a dead service cannot hold
        up the worker's exit.
        """
        if self._stopping or not self._tasks:
            return
        self._stopping = True
        current = asyncio.current_task()
        others = [task for task in self._tasks if task is not current]
        for task in others:
            task.cancel()
        if others:
            # Bounded like the goodbye: a task that swallowed its cancellation must not hold up the exit.
            ended, stuck = await asyncio.wait(others, timeout=self._goodbye_timeout)
            for task in ended:
                if not task.cancelled():
                    task.exception()  # retrieved, as gather did: asyncio would report it as never retrieved
            if stuck:
                logger.warning("%d heartbeat tasks did not stop when cancelled; leaving them", len(stuck))
        self.connected = False
        try:
            async with asyncio.timeout(self._goodbye_timeout):
                acks = self._ledger.outgoing()
                if acks:
                    # The ack of a STOP, say, must not be lost to the goodbye that follows it.
                    await self._stub.Beat(
                        hb_pb2.BeatRequest(report=self.build_report(), acks=acks),
                        metadata=self._metadata(),
                        timeout=self._goodbye_timeout,
                    )
                    self._ledger.confirm()
                    self.timings.confirm()
                if goodbye:
                    await self._stub.Goodbye(
                        hb_pb2.GoodbyeRequest(
                            worker_id=self.worker_id, instance_id=self.instance_id, reason=reason
                        ),
                        metadata=self._metadata(),
                        timeout=self._goodbye_timeout,
                    )
        except Exception as exc:
            self.last_error = exc
            logger.warning("could not say goodbye to %s: %s", self.target, _describe(exc))
        finally:
            channel, self._channel, self._tasks = self._channel, None, []
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()

    def record_job(
        self, queue: str, started_ms: int, finished_ms: int, enqueued_ms: int | None = None
    ) -> None:
        """Report one finished job's processing (and, with `enqueued_ms`, wait) time with the next beat."""
        wait = None if enqueued_ms is None else started_ms - enqueued_ms
        self.timings.record(queue, finished_ms, finished_ms - started_ms, wait)

    def request_beat(self) -> None:
        """Send a beat now rather than at the next interval (for instance after a state change)."""
        self._wake.set()

    def build_report(self) -> hb_pb2.WorkerReport:
        """Build the report for the next beat from the static identity, ``report()`` and process gauges."""
        try:
            if self._report is not None:
                self._last_stats = self._report()
        except Exception as exc:
            # A broken report callback must not silence the heartbeat; send the last good numbers.
            self._report_log.log(
                self.log_interval, logging.WARNING, "worker report callback failed: %s", _describe(exc)
            )
        stats = self._last_stats
        custom: dict[str, float] = {}
        for name, value in stats.gauges.items():
            with contextlib.suppress(TypeError, ValueError):
                custom[str(name)] = float(value)
        try:
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
        except psutil.Error:
            cpu, rss = 0.0, 0
        report = hb_pb2.WorkerReport(
            worker_id=self.worker_id,
            instance_id=self.instance_id,
            hostname=self.hostname,
            pid=self.pid,
            queues=self.queues,
            labels=self.labels,
            version=self.version,
            concurrency=self.concurrency,
            active_jobs=stats.active_jobs,
            processed_total=stats.processed_total,
            failed_total=stats.failed_total,
            active_job_ids=[str(job_id) for job_id in list(stats.active_job_ids)[:MAX_ACTIVE_JOB_IDS]],
            gauges=hb_pb2.ProcessGauges(
                cpu_percent=cpu, rss_bytes=rss, custom=custom, event_loop_lag_ms=self._take_lag()
            ),
            state=hb_pb2.WorkerState.ValueType(int(stats.state)),
            sdk=SDK_NAME,
            timings=self.timings.outgoing(),
            redis_clients=[
                hb_pb2.RedisClient(id=client_id, addr=addr)
                for client_id, addr in list(stats.redis_clients)[:MAX_REDIS_CLIENTS]
            ],
        )
        seconds = int(self._started_at)
        report.started_at.seconds = seconds
        report.started_at.nanos = int((self._started_at - seconds) * 1e9)
        return report

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop(goodbye=True)

    def _take_lag(self) -> float:
        """The largest event-loop lateness since the previous report, in milliseconds."""
        lag, self._lag_ms = self._lag_ms, 0.0
        return lag

    async def _probe_lag(self) -> None:
        # A job that blocks the loop (CPU work, a synchronous call) delays every timer: the sleep's
        # overshoot is how long other coroutines, this heartbeat among them, had to wait.
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            late = (loop.time() - start - LAG_PROBE_SECONDS) * 1000
            self._lag_ms = max(self._lag_ms, late, 0.0)

    # --- beating -------------------------------------------------------------------------------------

    async def _beat_forever(self) -> None:
        while True:
            try:
                if self._use_stream:
                    await self._stream_session()
                else:
                    await self._unary_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Never longer than a beat interval: a worker that does not beat looks down.
                delay = self._backoff.delay(self._failures, at_most=self._interval)
                self._failures += 1
                self._on_failure(exc, delay)
                await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Wait `delay` seconds before the next attempt; but if the connection itself was lost, only
        until the channel is READY again (the service is back: no reason to wait out the backoff)."""
        channel = self._channel
        if channel is None or channel.get_state() is grpc.ChannelConnectivity.READY:
            # Connected, yet the call failed (the service answered UNAVAILABLE, say): back off.
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                state = channel.get_state(try_to_connect=True)
                while state is not grpc.ChannelConnectivity.READY:
                    await channel.wait_for_state_change(state)
                    state = channel.get_state(try_to_connect=True)

    async def _unary_session(self) -> None:
        while True:
            request = hb_pb2.BeatRequest(report=self.build_report(), acks=self._ledger.outgoing())
            try:
                response = await self._stub.Beat(
                    request, metadata=self._metadata(), timeout=self._rpc_timeout
                )
            except BaseException:
                self.beats_failed += 1
                raise
            self.beats_sent += 1
            self._on_response(response)
            await self._wait_for_next_beat(None)

    async def _stream_session(self) -> None:
        call = self._stub.BeatStream(metadata=self._metadata())
        self._last_response = asyncio.get_running_loop().time()
        reader = asyncio.create_task(self._read_stream(call), name="workermon-heartbeat-reader")
        try:
            while True:
                request = hb_pb2.BeatStreamRequest(report=self.build_report(), acks=self._ledger.outgoing())
                try:
                    async with asyncio.timeout(self._rpc_timeout):
                        await call.write(request)
                except Exception as exc:
                    self.beats_failed += 1
                    # The reader holds the call's real status, which says more than a failed write.
                    status = _task_error(reader)
                    if status is not None:
                        raise status from exc
                    raise
                self.beats_sent += 1
                await self._wait_for_next_beat(reader)
                if reader.done():
                    reader.result()
                    raise _StreamLost("the service closed the beat stream")
                silence = asyncio.get_running_loop().time() - self._last_response
                if silence > 3 * self._interval + self._rpc_timeout:
                    raise _StreamLost(f"no answer on the beat stream for {silence:.0f}s")
        finally:
            reader.cancel()
            call.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _read_stream(self, call: Any) -> None:
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return
            self._on_response(response)

    async def _wait_for_next_beat(self, reader: asyncio.Task[None] | None) -> None:
        loop = asyncio.get_running_loop()
        beat_time = loop.time()
        while not self._wake.is_set() and not (reader is not None and reader.done()):
            # Recomputed on every pass: the service may state a new interval while we wait.
            remaining = beat_time + self._interval - loop.time()
            if remaining <= 0:
                break
            self._rearm.clear()
            waiters: set[asyncio.Future[Any]] = {
                asyncio.ensure_future(self._wake.wait()),
                asyncio.ensure_future(self._rearm.wait()),
            }
            try:
                await asyncio.wait(
                    waiters if reader is None else {*waiters, reader},
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
        self._wake.clear()

    def _on_response(self, response: Any) -> None:
        self._ledger.confirm()
        self.timings.confirm()
        self._last_response = asyncio.get_running_loop().time()
        if not self.connected:
            logger.info("connected to the heartbeat service at %s as %s", self.target, self.worker_id)
        self.connected = True
        self._failures = 0
        if response.HasField("beat_interval"):
            interval = response.beat_interval.seconds + response.beat_interval.nanos / 1e9
            if interval > 0:
                # Bounds guard against a misconfigured service making workers spin or go silent.
                interval = min(max(interval, 0.1), 3600.0)
                if interval != self._interval:
                    self._interval = interval
                    self._rearm.set()
        for command in response.commands:
            self._accept_command(command)

    def _on_failure(self, exc: BaseException, delay: float) -> None:
        self.connected = False
        self.last_error = exc
        code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
        level = logging.ERROR if code in _OPERATOR_CODES else logging.WARNING
        self._failure_log.log(
            self.log_interval,
            level,
            "heartbeat to %s failed (%s); retrying in %.1fs",
            self.target,
            _describe(exc),
            delay,
        )

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        token = self._token() if callable(self._token) else self._token
        return (("authorization", f"Bearer {token}"),)

    # --- commands ------------------------------------------------------------------------------------

    def _accept_command(self, command: WorkerCommand) -> None:
        if not command.command_id:
            return
        if not self._ledger.admit(command.command_id):
            if self._ledger.resend(command.command_id):
                self.request_beat()
            return
        self.commands_received += 1
        try:
            self._commands.put_nowait(command)
        except asyncio.QueueFull:
            self._ledger.complete(command.command_id, False, "too many commands waiting on this worker")
            self.request_beat()

    async def _run_commands(self) -> None:
        while not self._stopping:
            command = await self._commands.get()
            ok, result = await self._execute(command)
            self._ledger.complete(command.command_id, ok, result)
            self.request_beat()

    async def _execute(self, command: WorkerCommand) -> tuple[bool, str]:
        if self._handler is None:
            return False, "this worker does not take commands"
        try:
            ok, result = await self._handler(command)
        except Exception as exc:
            logger.exception("command %s (%s) failed", command.command_id, _command_name(command.type))
            return False, f"{type(exc).__name__}: {exc}"
        return bool(ok), str(result)


def _task_error(task: asyncio.Task[Any]) -> BaseException | None:
    if task.done() and not task.cancelled():
        return task.exception()
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _command_name(value: int) -> str:
    try:
        return CommandType(value).name
    except ValueError:
        return str(value)
