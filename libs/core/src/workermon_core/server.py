"""The grpc.aio server every service runs in: health that tracks readiness, reflection, interceptors,
background tasks, and graceful shutdown on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from .auth import TokenAuthority, method_roles
from .backoff import BACKOFF, Backoff
from .interceptors import ServerInterceptor
from .refusals import RefusalAudit, Writer, method_audit_actions

log = structlog.get_logger("workermon.server")

ReadinessCheck = Callable[[], Awaitable[None]]
"""Raises when a dependency is unreachable."""

LIVENESS_SERVICE = "liveness"
"""A health service name that is SERVING for as long as the server answers RPCs at all, whatever its
dependencies: what a liveness probe asks (Kubernetes: `grpc: {port: 50051, service: liveness}`), while
readiness asks for the overall status ("") or a service's own name."""


@dataclass
class ServiceSpec:
    """What a service contributes to a server: its servicer, its readiness checks, its background work."""

    name: str
    register: Callable[[grpc.aio.Server], None]
    checks: Sequence[ReadinessCheck] = ()
    background: Sequence[Callable[[], Awaitable[None]]] = ()
    close: Callable[[], Awaitable[None]] | None = None
    # Told the port the server bound, before it starts (a service calling its neighbours on it needs it
    # when the configured port is 0).
    bound: Callable[[int], None] | None = None


@dataclass
class SuiteServer:
    """A started server; `stop()` drains it."""

    server: grpc.aio.Server
    port: int
    specs: list[ServiceSpec]
    health: health.aio.HealthServicer
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    ready: bool = False

    async def set_ready(self, ready: bool, per_service: dict[str, bool] | None = None) -> None:
        """Publish SERVING / NOT_SERVING per service, and for the whole server ("" = all of them)."""
        if ready != self.ready:
            log.info("readiness_changed", serving=ready)
        self.ready = ready
        states = {"": ready, **{spec.name: (per_service or {}).get(spec.name, ready) for spec in self.specs}}
        for name, serving in states.items():
            await self.health.set(
                name,
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )

    async def stop(self, grace: float) -> None:
        """Go NOT_SERVING, stop background work, then finish in-flight RPCs within `grace` seconds.

        Background work first: several loops hold streams open on this very server (one service
        watching another's transitions), and the drain would otherwise wait the whole grace for them.
        """
        await self.set_ready(False)
        for task in self.tasks:
            task.cancel()
        stuck: set[asyncio.Task[None]] = set()
        if self.tasks:
            _, stuck = await asyncio.wait(self.tasks, timeout=5.0)
        if stuck:
            log.warning("background_tasks_did_not_stop", tasks=[t.get_name() for t in stuck])
        await self.server.stop(grace)
        for spec in self.specs:
            if spec.close is not None:
                await spec.close()


async def _service_ready(spec: ServiceSpec, limit: float) -> bool:
    try:
        await asyncio.gather(*(asyncio.wait_for(check(), timeout=limit) for check in spec.checks))
        return True
    except Exception as exc:  # any failure means not ready
        raise_if_cancelling()
        log.debug("dependency_unreachable", service=spec.name, error=repr(exc))
        return False


async def _watch_readiness(suite: SuiteServer, interval: float) -> None:
    """Each service is SERVING while its own dependencies answer; the server while all of them do."""
    while True:
        raise_if_cancelling()
        verdicts = await asyncio.gather(*(_service_ready(spec, max(interval, 1.0)) for spec in suite.specs))
        per_service = {spec.name: ok for spec, ok in zip(suite.specs, verdicts, strict=True)}
        if suite.ready and not all(verdicts):
            log.warning("dependency_unreachable", services=[n for n, ok in per_service.items() if not ok])
        await suite.set_ready(all(verdicts), per_service)
        await asyncio.sleep(interval)


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that a library turned into another error.

    On Python 3.11 a cancel that lands while `asyncio.timeout` is expiring (redis-py reads with
    one) can surface as TimeoutError; a loop that retries on TimeoutError would then never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def _keep_running(job: Callable[[], Awaitable[None]], backoff: Backoff = BACKOFF) -> None:
    """Background loops must outlive faults: run one again after it raised, backing off while it keeps
    raising. One warning (with the traceback) when it starts failing; one line once a run has lasted
    `backoff.cap` seconds without raising, which also starts the backoff over."""
    outage = Outage("background_task", backoff, traceback=True, task=getattr(job, "__qualname__", repr(job)))
    while True:
        settled = outage.ok_after(backoff.cap)
        try:
            await job()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outage.failed(exc)
        finally:
            settled.cancel()
        await outage.pause()


async def start_server(
    specs: list[ServiceSpec],
    authority: TokenAuthority,
    address: str,
    *,
    readiness_interval: float = 2.0,
    reuse_port: bool = False,
    audit_writer: Writer | None = None,
) -> SuiteServer:
    """Build, bind and start one server hosting `specs`; returns once it listens (port 0 picks one).

    With `audit_writer`, attempts the server refuses at an audited action (no token, a bad one, a
    role too low) are written to the audit log through it."""
    names = [spec.name for spec in specs]
    roles = method_roles(names)
    actions = method_audit_actions(names)
    refusals = RefusalAudit(audit_writer, actions) if audit_writer is not None and actions else None
    interceptor = ServerInterceptor(authority, roles, refusals)
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", 4 * 1024 * 1024),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            # Off by default so a second copy on the same port fails loudly; on to run replicas per host.
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # A fleet reconnecting at once (after a deploy) must queue, not be cancelled past 1,000.
            ("grpc.server.max_pending_requests", 20_000),
            ("grpc.server.max_pending_requests_hard_limit", 40_000),
        ],
    )
    for spec in specs:
        spec.register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*(spec.name for spec in specs), health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    for spec in specs:
        if spec.bound is not None:
            spec.bound(port)
    suite = SuiteServer(server=server, port=port, specs=specs, health=health_servicer)
    await suite.set_ready(False)
    # Never set NOT_SERVING: restarting a process because Redis or the database is down cures nothing.
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    await server.start()
    suite.tasks.append(asyncio.create_task(_watch_readiness(suite, readiness_interval)))
    for spec in specs:
        for job in spec.background:
            suite.tasks.append(asyncio.create_task(_keep_running(job)))
    return suite


async def run_until_signal(suite: SuiteServer, grace: float) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting_down", grace_seconds=grace)
    await suite.stop(grace)


def describe(exc: BaseException) -> str:
    """An error in one line: a gRPC status as `CODE: details`, anything else as its text (or type)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Outage:
    """Tracks a dependency outage inside a background loop, and paces its retries.

    One warning when it starts (`<event>_failing`, info when `quiet`), one info when it ends
    (`<event>_recovered`, with how many tries failed and for how long), nothing on the tries between;
    `pause()` waits as `backoff` says while it lasts. A cancellation disguised as a Redis timeout stays
    one. `fields` ride along on both lines.
    """

    def __init__(
        self,
        event: str,
        backoff: Backoff = BACKOFF,
        *,
        quiet: bool = False,
        traceback: bool = False,
        **fields: object,
    ) -> None:
        self.event = event
        self.backoff = backoff
        self.quiet = quiet
        self.traceback = traceback
        self.fields = fields
        self.failures = 0
        self._since = 0.0

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def failed(self, exc: BaseException) -> None:
        """Record a failed attempt."""
        raise_if_cancelling()
        if not self.failures:
            self._since = time.monotonic()
            extra: dict[str, object] = {"exc_info": exc} if self.traceback else {}
            emit = log.info if self.quiet else log.warning
            emit(self.event + "_failing", error=describe(exc), **self.fields, **extra)
        self.failures += 1

    def ok(self) -> None:
        """Record a successful attempt."""
        if self.failures:
            seconds = round(time.monotonic() - self._since, 1)
            log.info(self.event + "_recovered", failed_tries=self.failures, seconds=seconds, **self.fields)
        self.failures = 0

    def delay(self, at_least: float = 0.0) -> float:
        """Seconds to wait before the next try: `at_least` (the loop's own period) while all is well,
        the backoff's next delay (if longer) while it is failing."""
        return max(at_least, self.backoff.delay(self.failures))

    async def pause(self, at_least: float = 0.0) -> None:
        """Wait `delay(at_least)` seconds."""
        await asyncio.sleep(self.delay(at_least))

    def ok_after(self, seconds: float) -> asyncio.TimerHandle:
        """Count as recovered once `seconds` have passed (a stream still open then has reached its
        peer); cancel the handle when the attempt ends before that."""
        return asyncio.get_running_loop().call_later(seconds, self.ok)
