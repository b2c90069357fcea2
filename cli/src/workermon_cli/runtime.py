"""Starting the suite: dependencies (embedded or configured), the chosen targets, and shutdown."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from workermon_core.auth import TokenAuthority, load_or_create_secret
from workermon_core.redis_store import EmbeddedRedis, connect
from workermon_core.server import ServiceSpec, SuiteServer, start_server
from workermon_core.settings import Settings
from workermon_heartbeat import service as heartbeat_service


@dataclass
class Dependencies:
    """Connections shared by every service hosted in this process."""

    redis_url: str
    redis: aioredis.Redis
    embedded_redis: EmbeddedRedis | None = None

    async def close(self) -> None:
        """Close clients, then stop the embedded Redis if we started it."""
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        if self.embedded_redis is not None:
            self.embedded_redis.stop()


TargetBuilder = Callable[[Settings, Dependencies], ServiceSpec]


def _heartbeat(settings: Settings, deps: Dependencies) -> ServiceSpec:
    spec, _ = heartbeat_service.build(settings, deps.redis)
    return spec


# Loki-style targets: each service alone, or `all` of them in one process.
TARGETS: dict[str, TargetBuilder] = {"heartbeat": _heartbeat}


def resolve_targets(target: str) -> list[str]:
    """`all`, one target, or a comma-separated list; unknown names are a usage error."""
    names = list(TARGETS) if target == "all" else [t.strip() for t in target.split(",") if t.strip()]
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        raise SystemExit(f"unknown --target {target!r}; choose all or one of: {', '.join(TARGETS)}")
    return names


def open_dependencies(settings: Settings) -> Dependencies:
    """Connect to the configured Redis, or start the embedded one inside the data directory."""
    embedded = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        url = embedded.start()
    return Dependencies(
        redis_url=url, redis=connect(url, settings.redis_max_connections), embedded_redis=embedded
    )


def authority_for(settings: Settings) -> TokenAuthority:
    """The token authority signing with the configured secret, or the one kept in the data directory."""
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    return TokenAuthority(load_or_create_secret(configured, settings.data_dir), issuer=settings.jwt_issuer)


@dataclass
class Suite:
    """A running server with its dependencies."""

    settings: Settings
    deps: Dependencies
    server: SuiteServer
    authority: TokenAuthority
    targets: list[str] = field(default_factory=list)

    @property
    def grpc_target(self) -> str:
        """host:port clients dial."""
        return f"{self.settings.grpc_host}:{self.server.port}"

    async def stop(self) -> None:
        """Drain the server, then close the dependencies."""
        await self.server.stop(self.settings.shutdown_grace_seconds)
        await self.deps.close()


async def start_suite(settings: Settings, target: str = "all", deps: Dependencies | None = None) -> Suite:
    """Start the named targets in one gRPC server."""
    names = resolve_targets(target)
    deps = deps or open_dependencies(settings)
    authority = authority_for(settings)
    specs = [TARGETS[name](settings, deps) for name in names]
    server = await start_server(
        specs,
        authority,
        settings.grpc_address,
        readiness_interval=settings.readiness_interval_seconds,
        reuse_port=settings.grpc_reuse_port,
    )
    return Suite(settings=settings, deps=deps, server=server, authority=authority, targets=names)
