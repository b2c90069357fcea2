"""Uninstrumented workers: the BullMQ worker connections CLIENT LIST shows on the watched Redis, less
those an online instrumented worker reports as its own, one worker per host, queue and worker name.

Per host, not per connection: Node BullMQ names one connection per worker, but Python bullmq names
every connection of its pool, so counting connections would count one Python process several times.
The price is that two unnamed workers of one queue on one host look like one.
Each replica reads CLIENT LIST itself (a read-only command, every few seconds): nothing to share.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis.exceptions
import structlog

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.redis_store import AnyRedis
from workermon_core.server import Outage, raise_if_cancelling
from workermon_queues.bullmq.connections import ClientListRefused, WorkerConnection, worker_connections

from .store import Registry

log = structlog.get_logger("workermon.heartbeat")

ID_PREFIX = "bullmq/"
# An SDK worker's connection is named a moment before its first beat says it is the SDK's: a connection
# younger than this is not shown as an uninstrumented worker yet.
GRACE_SECONDS = 2
_UNSAFE = re.compile(r"[^A-Za-z0-9._:@/-]")


@dataclass(frozen=True, slots=True)
class SeenWorker:
    """One uninstrumented worker: a host's connections for one queue and worker name."""

    worker_id: str
    connections: tuple[WorkerConnection, ...]

    @property
    def first(self) -> WorkerConnection:
        """The oldest connection, which stands for the worker."""
        return max(self.connections, key=lambda c: c.age_seconds)

    def matches(self, *, queue: str, hostname: str, search: str) -> bool:
        """The ListWorkers filters, as the registry applies them to instrumented workers."""
        c = self.first
        if (queue and c.queue != queue) or (hostname and c.host != hostname):
            return False
        text = search.lower()
        return not text or any(text in s.lower() for s in (self.worker_id, c.host, c.queue, c.worker_name))

    def message(self, scan_ms: int, into: pb.Worker | None = None) -> pb.Worker:
        """As HeartbeatService shows a worker: ONLINE while connected, its connection, no SDK report."""
        c = self.first
        worker = into if into is not None else pb.Worker()
        worker.report.worker_id = self.worker_id
        worker.report.hostname = c.host
        worker.report.queues.append(c.queue)
        worker.status = pb.WORKER_STATUS_ONLINE
        worker.kind = pb.WORKER_KIND_UNINSTRUMENTED
        worker.first_seen_time.FromMilliseconds(scan_ms - c.age_seconds * 1000)
        idle = min(x.idle_seconds for x in self.connections)
        worker.last_seen_time.FromMilliseconds(scan_ms - idle * 1000)
        conn = worker.connection
        conn.queue, conn.worker_name, conn.addr, conn.client_id = c.queue, c.worker_name, c.addr, c.client_id
        conn.age.FromSeconds(c.age_seconds)
        conn.idle.FromSeconds(idle)
        conn.node, conn.client_name = c.node, c.name
        return worker


def seen_worker_id(connection: WorkerConnection) -> str:
    """A stable id (while the host keeps its address): readable host, hashed name."""
    digest = hashlib.blake2b(f"{connection.name}|{connection.host}".encode(), digest_size=6).hexdigest()
    return f"{ID_PREFIX}{_UNSAFE.sub('_', connection.host)[:120]}/{digest}"


@dataclass(frozen=True, slots=True)
class Scan:
    """The last CLIENT LIST read: whether it worked, and the uninstrumented workers it found."""

    status: pb.ConnectionScanStatus.ValueType
    detail: str = ""
    time_ms: int = 0
    workers: dict[str, SeenWorker] = field(default_factory=dict)

    def message(self) -> pb.ConnectionScan:
        """As ListWorkers reports it."""
        scan = pb.ConnectionScan(status=self.status, detail=self.detail)
        if self.time_ms:
            scan.scan_time.FromMilliseconds(self.time_ms)
        return scan

    def online_per_queue(self) -> Counter[str]:
        """Uninstrumented workers per queue."""
        return Counter(w.first.queue for w in self.workers.values())

    def ordered(self) -> list[SeenWorker]:
        """By worker id, as pages list them."""
        return [self.workers[k] for k in sorted(self.workers)]


def group(connections: Iterable[WorkerConnection], owned: set[tuple[str, str]]) -> dict[str, SeenWorker]:
    """Uninstrumented workers from the connections, less those of a (queue, host) where an instrumented
    worker of that queue runs: its connections are that worker's."""
    groups: dict[str, list[WorkerConnection]] = {}
    for c in connections:
        if c.age_seconds >= GRACE_SECONDS and (c.queue, c.host) not in owned:
            groups.setdefault(seen_worker_id(c), []).append(c)
    return {wid: SeenWorker(wid, tuple(conns)) for wid, conns in groups.items()}


class ConnectionWatch:
    """Reads CLIENT LIST every `interval` seconds (0: never) and keeps the last result."""

    def __init__(
        self,
        watched: AnyRedis,
        registry: Registry,
        prefix: str,
        interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.watched = watched
        self.registry = registry
        self.prefix = prefix
        self.interval = interval
        self.clock = clock
        disabled = pb.CONNECTION_SCAN_STATUS_DISABLED
        waiting = pb.CONNECTION_SCAN_STATUS_UNSPECIFIED
        self.current = Scan(disabled if interval <= 0 else waiting, "" if interval > 0 else "turned off")

    async def refresh(self) -> Scan:
        """Read CLIENT LIST now; a refusal or an outage is kept as the status, not raised."""
        now = int(self.clock() * 1000)
        try:
            connections = await worker_connections(self.watched, self.prefix)
            owned = await self.registry.own_hosts({c.queue for c in connections})
            scan = Scan(pb.CONNECTION_SCAN_STATUS_OK, "", now, group(connections, owned))
        except ClientListRefused as refused:
            detail = (
                f"the watched Redis refuses CLIENT LIST ({refused}); workers without the SDK cannot be seen"
            )
            scan = Scan(pb.CONNECTION_SCAN_STATUS_REFUSED, detail, now)
        self.current = scan
        return scan

    async def run(self) -> None:
        """The background loop; an unreachable Redis leaves the last workers out and says why."""
        if self.interval <= 0:
            return
        outage = Outage("connection_scan")
        while True:
            try:
                await self.refresh()
                outage.ok()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage.failed(exc)
                detail = f"the watched Redis did not answer CLIENT LIST: {exc}"
                self.current = Scan(pb.CONNECTION_SCAN_STATUS_FAILED, detail, int(self.clock() * 1000))
            raise_if_cancelling()
            await outage.pause(self.interval)
