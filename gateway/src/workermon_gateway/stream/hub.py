"""The hub of the live stream: numbered events kept for replay, sources run with backoff, and the
bounded per-client subscriptions they are fanned out to."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog

from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.backoff import BACKOFF, Backoff
from workermon_core.peer import Peer
from workermon_core.server import describe

from .sources import OVERVIEW, RESET, STATUS, OverviewPoller, Source, SourceSink, WorkerFollower

log = structlog.get_logger("workermon.gateway.stream")


DEFAULT_MAX_EVENTS = 10_000


DEFAULT_CLIENT_QUEUE = 256


_EVENT_ID_RE = re.compile(r"^(\d{1,16})-(\d{1,19})$")


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event as every client receives it; `wire` is encoded once and shared by all of them."""

    seq: int
    id: str
    kind: str
    data: dict[str, Any]
    at: float
    wire: bytes


def _encode(event_id: str | None, kind: str, data: dict[str, Any]) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"id: {event_id}\n" if event_id is not None else ""
    # json.dumps escapes newlines inside strings, so the payload is one `data:` line.
    return f"{head}event: {kind}\ndata: {text}\n\n".encode()


class Subscription:
    """One connected client: what it missed (replayed first), then a bounded queue of live events."""

    def __init__(self, backlog: list[StreamEvent], queue_size: int, expires_at: float | None) -> None:
        self.backlog = backlog
        self.queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue(maxsize=queue_size)
        self.expires_at = expires_at
        self.dropped = False
        self.cancel_scope: anyio.CancelScope | None = None
        self.delivered = 0

    def offer(self, event: StreamEvent) -> bool:
        """Queue a live event; False when the queue is full (the client is too slow)."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def close(self) -> None:
        """End the stream: gracefully when the queue has room, else by cancelling it."""
        if not self.offer_end():
            self.cancel()

    def offer_end(self) -> bool:
        """Queue the end marker; False when the queue is full."""
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            return False
        return True

    def cancel(self) -> None:
        """Tear the response down now, even if it is blocked writing to a client that does not read."""
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    async def frames(self, clock: Callable[[], float]) -> AsyncIterator[bytes]:
        """The encoded events for the response: the backlog, then live ones until closed or expired."""
        backlog, self.backlog = self.backlog, []
        for event in backlog:
            self.delivered += 1
            yield event.wire
        while True:
            try:
                if self.expires_at is None:
                    item = await self.queue.get()
                else:
                    async with asyncio.timeout(max(0.0, self.expires_at - clock())):
                        item = await self.queue.get()
            except TimeoutError:
                return  # the token expired: the client reconnects with a fresh one
            if item is None:
                return
            self.delivered += 1
            yield item.wire


class LiveStream:
    """The shared upstream subscriptions, the replay buffer and the connected clients."""

    def __init__(
        self,
        monitor: Peer[mon_grpc.MonitorServiceStub],
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        *,
        overview_interval: float,
        replay_seconds: float,
        clock: Callable[[], float] = time.time,
        max_events: int = DEFAULT_MAX_EVENTS,
        client_queue_size: int = DEFAULT_CLIENT_QUEUE,
        sources: Sequence[Source] = (),
        backoff: Backoff = BACKOFF,
    ) -> None:
        self.replay_seconds = replay_seconds
        self.client_queue_size = client_queue_size
        self._clock = clock
        self._ring: deque[StreamEvent] = deque(maxlen=max_events)
        # Each process starts its sequence at a random point: gateway replicas publish the same upstream
        # events, often in the same millisecond after as many events, so ids counted from 0 could match
        # across replicas and a client resuming on another replica would be replayed events it never got
        # instead of being told to refetch.
        self._seq = secrets.randbelow(1 << 40)
        self._started_ms = int(clock() * 1000)
        self._last_ms = self._started_ms
        self._last_id = ""
        self._overview: StreamEvent | None = None
        self._status: StreamEvent | None = None
        self._subscribers: set[Subscription] = set()
        self._health: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._backoff = backoff
        self.dropped_clients = 0
        # Transitions from the moment the gateway starts, even those made before WatchWorkers is
        # established (the upstream replays them from its retained backlog).
        start_id = f"{self._started_ms}-0"
        self.sources: list[Source] = [
            OverviewPoller(monitor, overview_interval),
            WorkerFollower(heartbeat, start_id),
        ]
        self.sources.extend(sources)

    # --- lifecycle ------------------------------------------------------------------------------------

    def add_source(self, source: Source) -> None:
        """Add a feed (IncidentService's, say); call before `start`."""
        if self._tasks:
            raise RuntimeError("add sources before start()")
        self.sources.append(source)

    async def start(self) -> None:
        """Start following every source in the background."""
        if self._tasks:
            return
        for source in self.sources:
            self._health.setdefault(source.name, True)
            self._tasks.append(asyncio.create_task(self._follow(source), name=f"stream-{source.name}"))

    async def stop(self) -> None:
        """Stop the sources and end every client's stream."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sub in list(self._subscribers):
            sub.close()
        self._subscribers.clear()

    async def _follow(self, source: Source) -> None:
        failures = 0
        while True:
            sink = SourceSink(self, source.name)
            try:
                await source.run(sink)
                raise ConnectionError(f"{source.name} stopped")
            except Exception as exc:
                # A source that reached its upstream before failing starts the backoff over.
                failures = 1 if sink.reached else failures + 1
                if self._health.get(source.name, True):
                    log.warning("stream_upstream_unavailable", source=source.name, error=describe(exc))
                self._set_health(source.name, False)
            # Jittered, so gateway replicas do not all come back at the same instant.
            await asyncio.sleep(self._backoff.delay(failures))

    def _set_health(self, name: str, ok: bool) -> None:
        if self._health.get(name) == ok:
            return
        self._health[name] = ok
        if ok:
            log.info("stream_upstream_recovered", source=name)
        services = {key: "ok" if up else "unavailable" for key, up in sorted(self._health.items())}
        upstream = "ok" if all(self._health.values()) else "unavailable"
        self._status = self.publish(STATUS, {"upstream": upstream, "services": services})

    # --- events ---------------------------------------------------------------------------------------

    def publish(self, kind: str, data: dict[str, Any]) -> StreamEvent:
        """Number an event, keep it for replay and hand it to every client (dropping those too slow)."""
        self._seq += 1
        # Never backwards, even if the wall clock steps back: ids must keep increasing.
        self._last_ms = max(self._last_ms, int(self._clock() * 1000))
        event_id = f"{self._last_ms}-{self._seq}"
        event = StreamEvent(self._seq, event_id, kind, data, self._clock(), _encode(event_id, kind, data))
        self._last_id = event_id
        self._ring.append(event)
        self._expire()
        if kind == OVERVIEW:
            self._overview = event
        for sub in list(self._subscribers):
            if not sub.offer(event):
                self.drop(sub, f"fell more than {self.client_queue_size} events behind")
        return event

    def _expire(self) -> None:
        horizon = self._clock() - self.replay_seconds
        while self._ring and self._ring[0].at < horizon:
            self._ring.popleft()

    def _missed(self, last_event_id: str) -> list[StreamEvent] | None:
        """Events after `last_event_id`, or None when some of them are gone (or the id is not ours)."""
        match = _EVENT_ID_RE.match(last_event_id.strip())
        if match is None:
            return None
        ms, seq = int(match.group(1)), int(match.group(2))
        if ms < self._started_ms or seq > self._seq:
            return None  # from another gateway process (before a restart, or another replica)
        if seq == self._seq:
            return [] if last_event_id.strip() == self._last_id else None
        if not self._ring or self._ring[0].seq > seq + 1:
            return None  # events after it have expired
        # Every event enters the ring, so sequence numbers in it are contiguous.
        index = seq - self._ring[0].seq
        if index >= 0 and self._ring[index].id != last_event_id.strip():
            return None
        return list(itertools.islice(self._ring, index + 1, None))

    def _current(self) -> list[StreamEvent]:
        events = [self._overview] if self._overview is not None else []
        if self._status is not None and not all(self._health.values()):
            events.append(self._status)
        return events

    def subscribe(self, last_event_id: str | None = None, expires_at: float | None = None) -> Subscription:
        """Register a client; its backlog is what it missed (or the current state), then live events."""
        self._expire()
        backlog: list[StreamEvent]
        if not last_event_id:
            backlog = self._current()
        else:
            missed = self._missed(last_event_id)
            if missed is None:
                reset = {"reason": "Last-Event-ID is older than the replay buffer or unknown; refetch"}
                # Carrying the newest id moves the browser's Last-Event-ID to now.
                head = StreamEvent(
                    0, self._last_id, RESET, reset, self._clock(), _encode(self._last_id, RESET, reset)
                )
                backlog = [head, *self._current()]
            else:
                backlog = _newest_overview_only(missed)
        sub = Subscription(backlog, self.client_queue_size, expires_at)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a client (its stream ended)."""
        self._subscribers.discard(sub)

    def drop(self, sub: Subscription, why: str) -> None:
        """Disconnect a client that cannot keep up."""
        if sub.dropped:
            return
        sub.dropped = True
        self._subscribers.discard(sub)
        self.dropped_clients += 1
        log.warning("stream_client_dropped", reason=why, delivered=sub.delivered)
        sub.cancel()

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._subscribers)

    @property
    def upstream_ok(self) -> bool:
        """Every source's upstream is reachable (as far as is known)."""
        return all(self._health.values())

    @property
    def buffered(self) -> int:
        """Events kept for replay."""
        return len(self._ring)


def _newest_overview_only(events: Iterable[StreamEvent]) -> list[StreamEvent]:
    events = list(events)
    last_overview = max((i for i, e in enumerate(events) if e.kind == OVERVIEW), default=-1)
    return [e for i, e in enumerate(events) if e.kind != OVERVIEW or i == last_overview]
