"""Modules of the suite started for a test through the same registry and runtime as `workermon serve`:
SQLite in a temp dir (or the given database), key prefixes of their own, gRPC on port 0.

The services reach each other over gRPC on the server's own port, as they do in `workermon serve`.
Settings come only from the arguments, never from the caller's environment (the root conftest clears
WORKERMON_* variables for the whole session).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from pydantic_settings import BaseSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.bull import delete_prefix
from workermon_cli import registry
from workermon_cli.runtime import Suite, migrate, open_dependencies, start_suite
from workermon_core.auth import TokenAuthority
from workermon_core.server import SuiteServer
from workermon_core.settings import Settings, SettingsT, load
from workermon_gateway.settings import GatewaySettings


def _models() -> list[type[BaseSettings]]:
    models: list[type[BaseSettings]] = [Settings]
    for module in registry.MODULES:
        models += [model for model in module.settings if model not in models]
    return models


class Config:
    """One set of setting values read as every settings class of the registry (tests only).

    `config.base_path` finds the field in whichever class defines it; `config.of(GatewaySettings)`
    gives that class. A name no settings class knows is a mistake in the test: ValueError.
    """

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - {name for model in _models() for name in model.model_fields})
        if unknown:
            raise ValueError(f"no setting is called {', '.join(unknown)}")
        self.values = values
        self._loaded: dict[type[BaseSettings], BaseSettings] = {}

    def of(self, model: type[SettingsT]) -> SettingsT:
        """The values read as `model`."""
        found = self._loaded.get(model)
        if found is None:
            found = self._loaded[model] = load(model, **self.values)
        return found  # type: ignore[return-value]

    @property
    def core(self) -> Settings:
        """The process settings."""
        return self.of(Settings)

    @property
    def gateway(self) -> GatewaySettings:
        """The gateway's settings."""
        return self.of(GatewaySettings)

    def __getattr__(self, name: str) -> Any:
        for model in _models():
            if name in model.model_fields:
                return getattr(self.of(model), name)
        raise AttributeError(name)


def split_overrides(**values: Any) -> tuple[Settings, dict[str, Any]]:
    """Process settings from `values`, and every value for the modules (unknown names: ValueError)."""
    config = Config(**values)
    return config.core, values


async def start_modules(
    targets: str | Sequence[str],
    *,
    authority: TokenAuthority,
    redis_url: str,
    database_url: str,
    clock: Callable[[], float] = time.time,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    migrate_first: bool = True,
    **overrides: Any,
) -> Suite:
    """Build and start `targets` (names of the registry) in one process, as `workermon serve` does."""
    values: dict[str, Any] = {
        "grpc_port": 0,
        "readiness_interval_seconds": 0.2,
        "redis_url": redis_url,
        "database_url": database_url,
        **overrides,
    }
    core, values = split_overrides(**values)
    if migrate_first:
        await migrate(core)
    deps = open_dependencies(core, overrides=values, options=options, authority=authority, clock=clock)
    names = targets if isinstance(targets, str) else ",".join(targets)
    return await start_suite(core, names, deps, freeze=False)


@dataclass
class LocalSuite:
    """The running suite, its database and Redis, and each module's parts by target name."""

    suite: Suite
    redis: aioredis.Redis
    queue_prefix: str

    @property
    def settings(self) -> Settings:
        """The process settings."""
        return self.suite.settings

    @property
    def engine(self) -> AsyncEngine:
        """The history database."""
        return self.suite.deps.engine

    @property
    def parts(self) -> dict[str, Any]:
        """What each module exposes, by name."""
        return {name: built.parts for name, built in self.suite.built.items()}

    @property
    def server(self) -> SuiteServer:
        """The gRPC server."""
        assert self.suite.server is not None
        return self.suite.server

    @property
    def target(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.suite.grpc_port}"

    async def stop(self) -> None:
        """Stop the suite, delete the queues' keys."""
        await self.suite.stop()
        await delete_prefix(self.redis, self.queue_prefix)


async def start_local_suite(
    tmp_path: Path,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    *,
    targets: Sequence[str] = ("heartbeat", "collector", "monitor"),
    clock: Callable[[], float] = time.time,
    database_url: str | None = None,
    incident_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> LocalSuite:
    """Migrate, then build and serve the named services with test-friendly defaults."""
    queue_prefix = overrides.pop("queue_prefix", "wmq-" + uuid.uuid4().hex[:10])
    values: dict[str, Any] = {
        "redis_prefix": prefix,
        "queue_prefix": queue_prefix,
        "beat_interval_seconds": 1,
        "collector_schedule": False,
        "live_max_age_seconds": 0,
        **overrides,
    }
    suite = await start_modules(
        targets,
        redis_url=redis_url,
        authority=authority,
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}",
        clock=clock,
        options={"incidents": incident_options or {}},
        **values,
    )
    return LocalSuite(suite, redis, queue_prefix)


async def start_config(
    config: Config,
    targets: str = registry.ALL,
    *,
    authority: TokenAuthority | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Suite:
    """Migrate, then start `targets` with exactly `config`'s values (the gateway included by default)."""
    await migrate(config.core)
    deps = open_dependencies(config.core, overrides=config.values, options=options, authority=authority)
    return await start_suite(config.core, targets, deps, freeze=False)
