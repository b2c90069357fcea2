"""One reader, many local watchers: items handed to every subscriber, a slow one dropped, not buffered.

A service that follows a feed (worker transitions, incident timeline) reads it once and fans it out to
its streaming RPCs. Each subscriber has a bounded queue; one that falls `buffer` items behind is dropped
and told so on its next read (RESOURCE_EXHAUSTED), and resumes from its last id - memory never grows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import grpc

from .errors import DomainError

T = TypeVar("T")


class SlowWatcher(DomainError):
    """The watcher fell more than the fan-out's buffer behind."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "WATCHER_TOO_SLOW"


class Subscription(Generic[T]):
    """One watcher's queue."""

    def __init__(self, buffer: int) -> None:
        self.queue: asyncio.Queue[T] = asyncio.Queue(maxsize=buffer)
        self.buffer = buffer
        self.dropped = False

    async def get(self) -> T:
        """The next item; SlowWatcher once the watcher has been dropped."""
        item = await self.queue.get()
        if self.dropped:
            raise SlowWatcher(f"watcher fell more than {self.buffer} items behind; resume later")
        return item


class Fanout(Generic[T]):
    """Hands each published item to every current subscriber."""

    def __init__(self, buffer: int = 1000) -> None:
        self.buffer = buffer
        self._subscribers: set[Subscription[T]] = set()

    def publish(self, item: T) -> None:
        """Give `item` to every subscriber; drop the ones whose queue is full."""
        for sub in list(self._subscribers):
            try:
                sub.queue.put_nowait(item)
            except asyncio.QueueFull:
                # Its queue is full, so it is not waiting: it sees the flag on its next read.
                sub.dropped = True
                self._subscribers.discard(sub)

    @contextmanager
    def subscribe(self) -> Iterator[Subscription[T]]:
        """A subscription for the duration of the block."""
        sub: Subscription[T] = Subscription(self.buffer)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        """How many watchers are subscribed."""
        return len(self._subscribers)
