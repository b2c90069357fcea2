"""The composition root's vocabulary: how a service (or the gateway) describes itself, and what it is given.

Every service package exports one `Module`: its name, what it needs (the suite's Redis, the watched
BullMQ Redis, the database, which peers it calls), its migrations, and `build(deps) -> Built`. The
`workermon` command, `workermon migrate`, the tests' suite helper and the benchmarks' server all
iterate one registry of these (`workermon_cli.registry`), so there is no second list of services.

`Deps` owns the connections of the process: it opens what a module needs on first use and closes it
once, whatever the number of modules hosted. A module reads its own settings through `deps.settings`
(the environment, plus overrides by field name that tests and benchmarks pass).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import grpc
from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon.monitor.v1.monitor_service_pb2_grpc import MonitorServiceStub

from .auth import TokenAuthority
from .db import create_engine, database_url, ping
from .migrations import Migrations
from .peer import LocalAddress, Peer, ServiceTokens
from .redis_store import AnyRedis, EmbeddedRedis, connect_any
from .refusals import Writer, monitor_writer
from .revocation import RevocationStore
from .server import ReadinessCheck, ServiceSpec
from .settings import Settings, SettingsT, load

StubT = TypeVar("StubT")


@dataclass(frozen=True)
class Needs:
    """What a module needs from the process; the process opens only what its modules need."""

    suite_redis: bool = False
    watched_redis: bool = False
    database: bool = False
    # Modules it calls over gRPC (reached at their configured target, or this process's own address).
    peers: tuple[str, ...] = ()


class HttpPart(Protocol):
    """What the gateway contributes to a process: an HTTP server started after the gRPC one."""

    async def start(self) -> None:
        """Listen (the port is known afterwards)."""
        ...

    async def stop(self, grace: float) -> None:
        """Stop listening, finish requests within `grace` seconds, close its clients."""
        ...


@dataclass
class Built:
    """What `build` returns: a gRPC service to host and/or an HTTP part, and the parts tests reach into."""

    grpc: ServiceSpec | None = None
    http: HttpPart | None = None
    parts: Any = None


@dataclass(frozen=True)
class Module:
    """One target of `workermon serve --target`: a service of the suite, or the gateway."""

    name: str
    summary: str
    needs: Needs
    build: Callable[[Deps], Built]
    migrations: Migrations | None = None
    # The settings classes it reads (beside the process settings): overrides are checked against them.
    settings: tuple[type[BaseSettings], ...] = ()


@dataclass
class Deps:
    """The process's connections and identity, shared by every module it hosts (closed here, once)."""

    core: Settings
    authority: TokenAuthority
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # Extra keyword arguments of one module's build, by module name (tests: clocks, polling periods).
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    # The watched BullMQ Redis; None: the suite's own.
    watched_redis_url: str | None = None
    redis_url: str | None = None
    embedded_redis: EmbeddedRedis | None = None
    _redis: AnyRedis | None = None
    _watched: AnyRedis | None = None
    _engine: AsyncEngine | None = None
    _peers: list[Peer[Any]] = field(default_factory=list)
    _settings: dict[type[BaseSettings], BaseSettings] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.address = LocalAddress(self.core.grpc_host, self.core.grpc_port)

    # --- settings -----------------------------------------------------------------------------------

    def settings(self, model: type[SettingsT]) -> SettingsT:
        """`model` read from the environment and the overrides (once per process)."""
        found = self._settings.get(model)
        if found is None:
            found = self._settings[model] = load(model, **self.overrides)
        return found  # type: ignore[return-value]

    def options_for(self, module: str) -> Mapping[str, Any]:
        """Extra build arguments given for one module."""
        return self.options.get(module, {})

    # --- connections --------------------------------------------------------------------------------

    @property
    def redis(self) -> AnyRedis:
        """The suite's own Redis (REDIS_URL, else the embedded one started in the data directory)."""
        if self._redis is None:
            if self.redis_url is None:
                self.embedded_redis = EmbeddedRedis(self.core.data_dir)
                self.redis_url = self.embedded_redis.start()
            self._redis = connect_any(self.redis_url, self.core.redis_max_connections)
        return self._redis

    @property
    def suite_redis_url(self) -> str:
        """URL of the suite's Redis (starting the embedded one if needed)."""
        _ = self.redis
        assert self.redis_url is not None
        return self.redis_url

    @property
    def watched_redis(self) -> AnyRedis:
        """The BullMQ Redis being watched (the suite's own unless configured)."""
        if self.watched_redis_url is None or self.watched_redis_url == self.redis_url:
            return self.redis
        if self._watched is None:
            self._watched = connect_any(self.watched_redis_url, self.core.redis_max_connections)
        return self._watched

    @property
    def engine(self) -> AsyncEngine:
        """The history database (SQLite in the data directory unless DATABASE_URL is set)."""
        if self._engine is None:
            self._engine = create_engine(database_url(self.core))
        return self._engine

    def peer_target(self, module: str) -> str | Callable[[], str]:
        """Where `module` is reached: WORKERMON_<MODULE>_TARGET, else this process's own address."""
        configured = getattr(self.core, f"{module}_target", None)
        return configured or self.address

    def peer(
        self, module: str, stub_class: Callable[[grpc.aio.Channel], StubT], token: Callable[[], str]
    ) -> Peer[StubT]:
        """A client of another module, closed with the process."""
        peer = Peer(self.peer_target(module), stub_class, token)
        self._peers.append(peer)
        return peer

    def tokens(self, subject: str, role: str) -> ServiceTokens:
        """Tokens naming `subject` with `role`, or the caller being served."""
        return ServiceTokens(self.authority, subject, role)

    def refusal_writer(self) -> Writer:
        """Writes attempts this process refuses at audited actions to MonitorService's audit log."""
        monitor = self.peer("monitor", MonitorServiceStub, self.tokens("refusals", "admin").own)
        return monitor_writer(monitor)

    def revocation_store(self) -> RevocationStore | None:
        """The token revocation record in the suite's Redis, writing through to this process's copy;
        None when the authority checks no revocations."""
        if self.authority.revocations is None:
            return None
        return RevocationStore(self.redis, self.core.redis_prefix, self.authority.revocations)

    def checks(self, needs: Needs) -> list[ReadinessCheck]:
        """Readiness checks of what `needs` names: a service is SERVING while all of them answer."""
        checks: list[ReadinessCheck] = []
        if needs.suite_redis:
            checks.append(self._ping_redis)
        if needs.watched_redis:
            checks.append(self._ping_watched)
        if needs.database:
            checks.append(self._ping_database)
        return checks

    async def _ping_redis(self) -> None:
        await self.redis.ping()

    async def _ping_watched(self) -> None:
        await self.watched_redis.ping()

    async def _ping_database(self) -> None:
        await ping(self.engine)

    async def close(self) -> None:
        """Close peers and clients, then stop the embedded Redis if this process started it."""
        for peer in self._peers:
            with contextlib.suppress(Exception):
                await peer.close()
        for client in (self._watched, self._redis):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
        if self._engine is not None:
            await self._engine.dispose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


def grpc_service(
    deps: Deps,
    needs: Needs,
    name: str,
    add: Callable[[Any, grpc.aio.Server], None],
    servicer: object,
    *,
    background: Sequence[Callable[[], Awaitable[None]]] = (),
    close: Callable[[], Awaitable[None]] | None = None,
) -> ServiceSpec:
    """The ServiceSpec of a module: `add(servicer, server)` (the generated add_*Servicer_to_server),
    readiness from its needs, and its own address told the bound port."""
    return ServiceSpec(
        name=name,
        register=lambda server: add(servicer, server),
        checks=deps.checks(needs),
        background=background,
        close=close,
        bound=deps.address.bind,
    )
