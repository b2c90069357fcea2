"""The shapes of a service's background work, as named classes the server runs (and restarts after a
fault): a job repeated on a period, a component started once and stopped with the process, and a
follower of another service's stream. Each backs off (`Backoff`, through `Outage`) while it fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from .backoff import BACKOFF, Backoff
from .server import Outage, raise_if_cancelling


class Every:
    """Runs `job` every `interval` seconds; while it fails, every `interval` or the backoff's delay,
    whichever is longer. One warning when it starts failing, one line when it recovers."""

    def __init__(
        self,
        name: str,
        interval: float,
        job: Callable[[], Awaitable[object]],
        *,
        first_at_once: bool = False,
        backoff: Backoff = BACKOFF,
    ) -> None:
        self.__qualname__ = f"Every({name})"
        self.name = name
        self.interval = interval
        self.job = job
        self.first_at_once = first_at_once
        self.backoff = backoff

    async def __call__(self) -> None:
        """Repeat until cancelled."""
        outage = Outage(self.name, self.backoff)
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
            await outage.pause(self.interval)


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
    """Runs `follow` (a loop over another service's server stream) again whenever it fails or ends,
    backing off while it keeps failing: one quiet line when the peer goes away, one when a new stream
    has stayed open `settle` seconds (it reached the peer: the stream sends nothing until there is
    news, while a call that cannot connect fails at once)."""

    def __init__(
        self,
        name: str,
        follow: Callable[[], Awaitable[None]],
        *,
        backoff: Backoff = BACKOFF,
        settle: float = 1.0,
    ) -> None:
        self.__qualname__ = f"Follower({name})"
        self.name = name
        self.follow = follow
        self.backoff = backoff
        self.settle = settle

    async def __call__(self) -> None:
        """Follow until cancelled."""
        # The peer restarting or not up yet is expected: said once per interruption, quietly.
        outage = Outage(self.name, self.backoff, quiet=True)
        while True:
            settled = outage.ok_after(self.settle)
            try:
                await self.follow()
                ended: Exception = ConnectionError("the stream ended")
            except Exception as exc:
                ended = exc
            finally:
                settled.cancel()
            outage.failed(ended)
            await outage.pause()
