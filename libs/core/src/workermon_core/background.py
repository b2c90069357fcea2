"""The shapes of a service's background work, as named classes the server runs (and restarts after a
fault): a job repeated on a period, a component started once and stopped with the process, and a
follower of another service's stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc
import structlog

from .server import Outage, raise_if_cancelling

log = structlog.get_logger("workermon.background")


class Every:
    """Runs `job` every `interval` seconds; one warning when it starts failing, one line when it recovers."""

    def __init__(
        self, name: str, interval: float, job: Callable[[], Awaitable[object]], *, first_at_once: bool = False
    ) -> None:
        self.__qualname__ = f"Every({name})"
        self.name = name
        self.interval = interval
        self.job = job
        self.first_at_once = first_at_once

    async def __call__(self) -> None:
        """Repeat until cancelled."""
        outage = Outage(self.name)
        if not self.first_at_once:
            await asyncio.sleep(self.interval)
        while True:
            try:
                await self.job()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)
            # A cancel that landed inside the job may have been turned into an error the job handled
            # itself (redis-py's timeouts do): the sleep would not see it, and the loop would outlive
            # the server that stopped it.
            raise_if_cancelling()
            await asyncio.sleep(self.interval)


class Startable(Protocol):
    """A component with its own start and stop (a taskiq schedule, the notifier)."""

    async def start(self) -> None:
        """Start its own tasks."""
        ...

    async def stop(self) -> None:
        """Stop them."""
        ...


class Resident:
    """Starts a component with the server and stops it when the server's background work is cancelled."""

    def __init__(self, name: str, component: Startable | Callable[[], Startable]) -> None:
        self.__qualname__ = f"Resident({name})"
        self.name = name
        self.component = component

    async def __call__(self) -> None:
        """Start, wait for cancellation, stop."""
        component = self.component() if callable(self.component) else self.component
        await component.start()
        try:
            await asyncio.Event().wait()
        finally:
            await component.stop()


class Follower:
    """Runs `follow` (a loop over another service's server stream); when the peer goes away it logs one
    quiet line and pauses before the server runs it again."""

    def __init__(self, name: str, follow: Callable[[], Awaitable[None]], *, pause: float = 2.0) -> None:
        self.__qualname__ = f"Follower({name})"
        self.name = name
        self.follow = follow
        self.pause = pause

    async def __call__(self) -> None:
        """Follow once; the server restarts it."""
        try:
            await self.follow()
        except grpc.aio.AioRpcError as exc:
            # The peer restarting or not up yet: expected, so said once per interruption, quietly.
            log.info(f"{self.name}_interrupted", code=exc.code().name)
            await asyncio.sleep(self.pause)
