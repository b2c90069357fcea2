"""Heartbeat, collector and monitor in one gRPC server, restartable on the same port, and gateway routes
served over real HTTP (uvicorn) in front of them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from tests.support.bull import delete_prefix
from tests.support.suites import Config, start_modules
from workermon_cli.runtime import Suite
from workermon_core.auth import TokenAuthority

# --- the services, restartable on the same port -----------------------------------------------------


@dataclass
class Services:
    """Heartbeat, collector and monitor in one gRPC server, as `workermon serve` runs them."""

    settings: Config
    authority: TokenAuthority
    suite: Suite | None = None
    port: int = 0

    @property
    def redis_url(self) -> str:
        """The suite's (and the watched) Redis."""
        return str(self.settings.redis_url)

    @property
    def target(self) -> str:
        """The gRPC server's address."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start (again, on the same port once it has one)."""
        self.suite = await start_modules(
            ["heartbeat", "collector", "monitor"],
            authority=self.authority,
            migrate_first=self.port == 0,
            **{**self.settings.values, "grpc_port": self.port},
        )
        self.port = self.suite.grpc_port

    async def stop(self) -> None:
        """Stop the server (the port is kept for the next start)."""
        if self.suite is not None:
            await self.suite.stop()
            self.suite = None


async def start_services(
    tmp_path: Path,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    **overrides: Any,
) -> tuple[Services, Callable[[], Awaitable[None]]]:
    """The three services on SQLite in tmp_path, watching BullMQ queues under a prefix of their own."""
    queue_prefix = "wmq-" + uuid.uuid4().hex[:10]
    settings = Config(
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}",
        redis_prefix=prefix,
        queue_prefix=queue_prefix,
        beat_interval_seconds=1,
        online_window_seconds=3,
        collector_schedule=False,
        live_max_age_seconds=0,
        shutdown_grace_seconds=0.2,
        **overrides,
    )
    services = Services(settings, authority)
    await services.start()

    async def stop() -> None:
        await services.stop()
        await delete_prefix(redis, queue_prefix)

    return services, stop


# --- the gateway over real HTTP -----------------------------------------------------------------------


async def serve_http(
    routes: list[BaseRoute], middleware: list[Middleware] | None = None
) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    """A Starlette app of `routes` behind uvicorn on a free port; returns its base URL."""
    app = Starlette(routes=routes, middleware=middleware or [])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://127.0.0.1:{port}", server, task


async def stop_http(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop what `serve_http` started."""
    server.should_exit = True
    await asyncio.wait_for(task, 10)
