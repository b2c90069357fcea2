"""Assembles IncidentService for a server: the engine, its gRPC data source, the timeline feed, and
the background loops (periodic evaluation, the WatchWorkers follower, the feed reader)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.db import ping
from workermon_core.peer import LocalAddress, Peer, ServiceTokens
from workermon_core.server import Outage, ServiceSpec
from workermon_core.settings import Settings

from .engine import EngineConfig, IncidentEngine
from .notify.channels import load_channels
from .notify.tasks import Notifier, build_broker
from .rules import RuleBook
from .servicer import IncidentServicer
from .source import GrpcSource, worker_of
from .store import IncidentStore
from .watch import IncidentFeed

log = structlog.get_logger("workermon.incidents")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IncidentService"].full_name
# After a worker goes OFFLINE, look again this long after its rule could first fire.
RECHECK_MARGIN_SECONDS = 1.0


@dataclass
class IncidentParts:
    """What tests, the runtime and the notifier reach into."""

    engine: IncidentEngine
    store: IncidentStore
    feed: IncidentFeed
    servicer: IncidentServicer
    workers: WorkerFollower
    notifier: Notifier | None = None


class WorkerFollower:
    """Applies the WORKER_DOWN rule on HeartbeatService's transitions, instead of waiting for the timer.

    OFFLINE comes after the online window, usually before `worker_down_missed_beats` beats are missed;
    the worker is looked at again when the rule can first fire.
    """

    def __init__(
        self,
        engine: IncidentEngine,
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        missed_seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.heartbeat = heartbeat
        self.missed_seconds = missed_seconds
        self.clock = clock
        self._rechecks: set[asyncio.Task[None]] = set()
        self.handled = 0

    async def run(self) -> None:
        """Follow new transitions until cancelled (the server restarts it after an error)."""
        try:
            stream = self.heartbeat.stub.WatchWorkers(hb_pb.WatchWorkersRequest())
            async for event in stream:
                await self.handle(event)
        finally:
            for task in self._rechecks:
                task.cancel()

    async def handle(self, event: hb_pb.WatchWorkersResponse) -> None:
        """Evaluate the worker now, and again when it could first count as down."""
        if event.type not in (hb_pb.WORKER_EVENT_TYPE_ONLINE, hb_pb.WORKER_EVENT_TYPE_OFFLINE):
            return
        if not event.HasField("worker"):
            return
        state = worker_of(event.worker)
        await self.engine.evaluate_workers([state])
        self.handled += 1
        if not state.online and not state.offline_reason.startswith("goodbye"):
            due = state.last_seen.timestamp() + self.missed_seconds + RECHECK_MARGIN_SECONDS - self.clock()
            task = asyncio.create_task(self._recheck(state.worker_id, max(due, 0.0)))
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _recheck(self, worker_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        try:
            reply = await self.heartbeat.stub.GetWorker(hb_pb.GetWorkerRequest(worker_id=worker_id))
            await self.engine.evaluate_workers([worker_of(reply.worker)])
        except grpc.aio.AioRpcError as exc:
            # Forgotten, or the registry is down: the periodic evaluation covers it.
            log.info("worker_recheck_failed", worker=worker_id, code=exc.code().name)
        except Exception:
            log.exception("worker_recheck_failed", worker=worker_id)


def build(
    settings: Settings,
    redis: aioredis.Redis,
    engine: AsyncEngine,
    authority: TokenAuthority,
    *,
    clock: Callable[[], float] = time.time,
    feed_poll_seconds: float = 1.0,
    redis_url: str | None = None,
) -> tuple[ServiceSpec, IncidentParts]:
    """The ServiceSpec to host and its parts.

    `redis_url` is the suite's Redis, which carries the notification tasks (taskiq); without it, or
    without configured channels, nothing is notified. Rule thresholds come from `settings`, per-queue
    overrides from WORKERMON_INCIDENT_RULES, channels from WORKERMON_NOTIFY_CHANNELS (ConfigError when
    malformed, so a bad configuration stops the process at start).
    """
    del redis
    channels = load_channels(settings)
    own_address = LocalAddress(settings.grpc_host, settings.grpc_port)
    viewer = ServiceTokens(authority, "incidents", "viewer")
    admin = ServiceTokens(authority, "incidents", "admin")
    collector = Peer(settings.collector_target or own_address, col_grpc.CollectorServiceStub, viewer.own)
    heartbeat = Peer(settings.heartbeat_target or own_address, hb_grpc.HeartbeatServiceStub, viewer.own)
    # Audit entries are written with the service's own admin identity; the entry names the caller.
    monitor = Peer(own_address, mon_grpc.MonitorServiceStub, admin.own)
    store = IncidentStore(engine)
    incident_engine = IncidentEngine(
        store,
        GrpcSource(collector, heartbeat),
        RuleBook.from_settings(settings),
        EngineConfig(
            beat_interval_seconds=settings.beat_interval_seconds,
            worker_down_missed_beats=settings.worker_down_missed_beats,
            stats_stale_minutes=settings.stats_stale_minutes,
            incident_quiet_minutes=settings.incident_quiet_minutes,
            notify_repeat_hours=settings.notify_repeat_hours,
        ),
        clock=clock,
    )
    feed = IncidentFeed(store, poll_seconds=feed_poll_seconds)
    incident_engine.on_commit(feed.wake)
    servicer = IncidentServicer(incident_engine, feed, monitor)
    notifier: Notifier | None = None
    if channels and redis_url is not None:
        notifier = Notifier(
            settings,
            engine,
            build_broker(redis_url, settings.redis_prefix),
            channels=channels,
            on_delivered=incident_engine.record_notified,
        )
        incident_engine.on_transition(notifier.handle)
    follower = WorkerFollower(
        incident_engine,
        heartbeat,
        settings.beat_interval_seconds * settings.worker_down_missed_beats,
        clock,
    )

    async def evaluate_periodically() -> None:
        outage = Outage("incident_evaluation")
        while True:
            await asyncio.sleep(settings.incident_eval_interval_seconds)
            try:
                await incident_engine.evaluate()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)

    async def follow_workers() -> None:
        try:
            await follower.run()
        except grpc.aio.AioRpcError as exc:
            # HeartbeatService restarting or not up yet: the loop restarts us; say it once, quietly.
            log.info("worker_events_interrupted", code=exc.code().name)
            await asyncio.sleep(2.0)

    async def run_notifier() -> None:
        assert notifier is not None
        await notifier.start()
        try:
            await asyncio.Event().wait()
        finally:
            await notifier.stop()

    async def database_ready() -> None:
        await ping(engine)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_IncidentServiceServicer_to_server(servicer, server)

    async def close() -> None:
        for peer in (collector, heartbeat, monitor):
            await peer.close()

    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        checks=[database_ready],
        background=[evaluate_periodically, follow_workers, feed.run, *([run_notifier] if notifier else [])],
        close=close,
        bound=own_address.bind,
    )
    return spec, IncidentParts(incident_engine, store, feed, servicer, follower, notifier)
