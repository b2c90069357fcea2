"""One reader of the transitions stream per replica, fanned out to every WatchWorkers call it serves.

A blocking XREAD holds a Redis connection; with a reader per watcher, watchers would drain the pool
that beats need. Here N watchers cost one connection, and a slow watcher is dropped rather than
allowed to grow memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import redis.exceptions
import structlog

from workermon_core.errors import Unavailable
from workermon_core.fanout import Fanout
from workermon_core.server import Outage, raise_if_cancelling

from .store import Registry, StoredEvent

log = structlog.get_logger("workermon.heartbeat.events")

WATCHER_BUFFER = 1000


def event_key(event_id: str) -> tuple[int, int]:
    """Stream ids compare as (milliseconds, sequence)."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class EventHub:
    """Reads new transitions once and hands them to every local subscriber."""

    def __init__(self, registry: Registry, block_ms: int = 2000) -> None:
        self.registry = registry
        self.block_ms = block_ms
        self._fanout: Fanout[StoredEvent] = Fanout(WATCHER_BUFFER)

    async def run(self) -> None:
        """Follow the stream forever; after a Redis failure back off, then resume where it stopped."""
        last: str | None = None
        outage = Outage("worker_event_reader")
        while True:
            raise_if_cancelling()
            try:
                if last is None:
                    last = await self.registry.latest_event_id()
                for event in await self.registry.read_events(last, block_ms=self.block_ms):
                    last = event.event_id
                    self._fanout.publish(event)
                outage.ok()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage.failed(exc)
                await outage.pause()

    async def watch(self, after: str | None) -> AsyncIterator[StoredEvent]:
        """Events after `after` (from the stream's backlog), then live ones, with no gap or repeat."""
        with self._fanout.subscribe() as sub:
            position = event_key(after) if after else None
            if after is not None:
                try:
                    backlog = await self.registry.events_after(after)
                except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                    raise Unavailable("Redis is unreachable", reason="REDIS_UNAVAILABLE") from None
                for event in backlog:
                    position = event_key(event.event_id)
                    yield event
            while True:
                event = await sub.get()
                key = event_key(event.event_id)
                if position is not None and key <= position:
                    continue  # already sent from the backlog
                position = key
                yield event
