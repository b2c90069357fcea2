"""One reader of the incident timeline per replica, fanned out to every WatchIncidents call it serves.

The timeline is a table, so changes made by another replica are found by polling (every
`poll_seconds`); this replica's own commits wake the reader at once. Timeline ids are committed in
increasing order (store.py), so "every entry after the last id sent" never skips one. A watcher that
falls WATCHER_BUFFER entries behind is dropped rather than allowed to grow memory; it resumes with its
last id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from workermon_core.fanout import Fanout
from workermon_core.server import Outage, raise_if_cancelling

from .incident import IncidentEvent
from .store import IncidentStore

WATCHER_BUFFER = 1000


class IncidentFeed:
    """Reads new timeline entries once and hands them to every local subscriber."""

    def __init__(self, store: IncidentStore, poll_seconds: float = 1.0) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._fanout: Fanout[IncidentEvent] = Fanout(WATCHER_BUFFER)
        self._wake = asyncio.Event()
        self.last: int | None = None

    def wake(self) -> None:
        """Read now (a local commit added entries)."""
        self._wake.set()

    async def run(self) -> None:
        """Follow the timeline forever; after a database failure resume where it stopped."""
        outage = Outage("incident_feed")
        while True:
            raise_if_cancelling()
            try:
                if self.last is None:
                    self.last = await self.store.latest_event_id()
                while True:
                    batch = await self.store.events_after(self.last)
                    for event in batch:
                        self.last = event.id
                        self._fanout.publish(event)
                    if len(batch) < 500:
                        break
                outage.ok()
            except Exception as exc:
                outage.failed(exc)
            # While the database is down, the backoff's delay (a local commit still wakes it early).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=outage.delay(self.poll_seconds))
            self._wake.clear()

    async def watch(self, after: int) -> AsyncIterator[IncidentEvent]:
        """Entries after `after` (0: from now), from the table first, then live, with no gap or repeat."""
        with self._fanout.subscribe() as sub:
            position = (
                after
                if after > 0
                else (self.last if self.last is not None else await self.store.latest_event_id())
            )
            while True:
                # Catch up from the table: covers the backlog and anything published before we subscribed.
                backlog = await self.store.events_after(position)
                for event in backlog:
                    position = event.id
                    yield event
                if len(backlog) < 500:
                    break
            while True:
                event = await sub.get()
                if event.id <= position:
                    continue
                position = event.id
                yield event
