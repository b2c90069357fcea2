"""Keeps the embedded Redis running: when its redis-server dies, it comes back on the same port and data
directory, so the suite's clients reconnect to it on their own."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from .backoff import Backoff
from .redis_store import EmbeddedRedis

log = structlog.get_logger("workermon.redis")

# A local redis-server comes back in a fraction of a second: retry sooner than the suite's loops do.
RESTART_BACKOFF = Backoff(base=0.2, cap=5.0)


class RedisSupervisor:
    """Watches an `EmbeddedRedis` from an asyncio task and restarts it when it dies.

    Failed attempts are spaced by capped exponential backoff with jitter. It logs one warning when the
    server dies and one line when it is back, nothing per attempt (those are at debug level). Readiness
    needs nothing from here: the services' Redis checks go NOT_SERVING meanwhile and SERVING after.
    Whoever uses the server runs one: the process that started it, and a process that reused it (which
    then starts it itself if its first owner is gone). Stop it before the server, so that a deliberate
    stop is not undone.
    """

    def __init__(
        self,
        server: EmbeddedRedis,
        *,
        interval: float = 0.5,
        backoff: Backoff = RESTART_BACKOFF,
        start_limit: float = 10.0,
    ) -> None:
        self.server = server
        self.interval = interval
        self.backoff = backoff
        self.start_limit = start_limit
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="embedded-redis-supervisor")

    async def stop(self) -> None:
        """Stop watching; a restart under way is abandoned (and its server stopped)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if not self.server.alive():
                await self._revive()

    async def _revive(self) -> None:
        down_since = time.monotonic()
        log.warning(
            "embedded_redis_died",
            port=self.server.port,
            exit_code=self.server.exit_code,
            dir=str(self.server.dir),
        )
        attempts = 0
        while True:
            attempts += 1
            try:
                await self.server.restart(self.start_limit)
            except Exception as exc:  # any failure: try again later
                log.debug("embedded_redis_restart_failed", attempt=attempts, error=str(exc))
                await asyncio.sleep(self.backoff.delay(attempts))
                continue
            self.restarts += 1
            log.info(
                "embedded_redis_restarted",
                port=self.server.port,
                attempts=attempts,
                down_seconds=round(time.monotonic() - down_since, 3),
                started_here=self.server.process is not None,
            )
            return
