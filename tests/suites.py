"""Several services of the suite in one gRPC server for a test: SQLite in a temp dir, own prefixes, port 0.

The services reach each other over gRPC on the server's own port, as they do in `workermon serve`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.queues.conftest import delete_prefix
from workermon_collector import migrate as collector_migrations
from workermon_collector import service as collector_service
from workermon_core.auth import TokenAuthority
from workermon_core.db import create_engine
from workermon_core.server import ServiceSpec, SuiteServer, start_server
from workermon_core.settings import Settings
from workermon_heartbeat import service as heartbeat_service
from workermon_incidents import migrate as incident_migrations
from workermon_incidents import service as incident_service
from workermon_monitor import migrate as monitor_migrations
from workermon_monitor import service as monitor_service


@dataclass
class LocalSuite:
    """The running server, its settings and database, and each service's parts by target name."""

    settings: Settings
    engine: AsyncEngine
    server: SuiteServer
    redis: aioredis.Redis
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.server.port}"

    @property
    def queue_prefix(self) -> str:
        """The BullMQ prefix the services watch."""
        return self.settings.queue_prefix

    async def stop(self) -> None:
        """Stop the server, close the database, delete the queues' keys."""
        await self.server.stop(0.5)
        await self.engine.dispose()
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
    """Migrate, build the named services (heartbeat, collector, monitor, incidents) and serve them."""
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}"
    for migrations in (collector_migrations, monitor_migrations, incident_migrations):
        await migrations.upgrade(url)
    engine = create_engine(url)
    values: dict[str, Any] = {
        "grpc_port": 0,  # the services find each other on the port actually bound
        "redis_prefix": prefix,
        "queue_prefix": "wmq-" + uuid.uuid4().hex[:10],
        "beat_interval_seconds": 1,
        "collector_schedule": False,
        "live_max_age_seconds": 0,
    }
    settings = Settings(**{**values, **overrides})
    specs: list[ServiceSpec] = []
    parts: dict[str, Any] = {}
    for name in targets:
        if name == "heartbeat":
            spec, parts[name] = heartbeat_service.build(settings, redis)
        elif name == "collector":
            spec, parts[name] = collector_service.build(
                settings, redis, redis, engine, authority, redis_url, clock=clock
            )
        elif name == "monitor":
            spec, parts[name] = monitor_service.build(settings, redis, redis, engine, authority)
        elif name == "incidents":
            spec, parts[name] = incident_service.build(
                settings, redis, engine, authority, clock=clock, **(incident_options or {})
            )
        else:
            raise ValueError(f"unknown target {name!r}")
        specs.append(spec)
    server = await start_server(specs, authority, "127.0.0.1:0", readiness_interval=0.2)
    return LocalSuite(settings, engine, server, redis, parts)
