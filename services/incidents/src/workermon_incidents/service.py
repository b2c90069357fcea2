"""IncidentService as a module of the suite: the engine, its gRPC data source, the timeline feed, and
the background loops (periodic evaluation, the WatchWorkers follower, the feed reader, the notifier)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import grpc
import structlog

from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.background import Every, Follower, Resident
from workermon_core.modules import Built, Deps, Module, Needs, grpc_service
from workermon_core.peer import Peer
from workermon_queues.bullmq.backend import BullMQBackend
from workermon_queues.settings import QueueSettings

from . import alerting_config
from .alerting_store import AlertingConfigs
from .engine import EngineConfig, IncidentEngine
from .migrate import MIGRATIONS
from .notify.tasks import Notifier, build_broker
from .paused import PausedQueues
from .replay import notified_since
from .rules import RuleBook
from .servicer import IncidentServicer
from .settings import IncidentSettings
from .source import GrpcSource, worker_of
from .store import IncidentStore
from .watch import IncidentFeed

log = structlog.get_logger("workermon.incidents")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IncidentService"].full_name
# The notifier's tasks travel through the suite's Redis. The watched Redis (a paused queue's flag mutes
# its backlog and no-worker notifications) is read but not needed: when it is down, STATS_STALE must
# still fire and be notified, so it is no part of this service's readiness.
NEEDS = Needs(suite_redis=True, database=True, peers=("collector", "heartbeat", "monitor"))
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
    configs: AlertingConfigs | None = None


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


def build(deps: Deps) -> Built:
    """Wire the engine, its gRPC data source and the timeline feed; background: periodic evaluation, the
    WatchWorkers follower, the feed reader, the alerting configuration's reload, the notifier, and the
    audit outbox's sweep.

    Rule thresholds, overrides, channels and routes come from the stored alerting configuration
    (alerting_store.py); the environment (IncidentSettings, WORKERMON_INCIDENT_RULES,
    WORKERMON_NOTIFY_CHANNELS) is only its first revision. Build options: `feed_poll_seconds`,
    `alerting_config_poll_seconds` and `audit_outbox_poll_seconds` (floats).
    """
    settings = deps.settings(IncidentSettings)
    options = deps.options_for("incidents")
    clock = deps.clock
    viewer = deps.tokens("incidents", "viewer")
    collector = deps.peer("collector", col_grpc.CollectorServiceStub, viewer.own)
    heartbeat = deps.peer("heartbeat", hb_grpc.HeartbeatServiceStub, viewer.own)
    # Audit entries are written with the service's own admin identity; the entry names the caller.
    monitor = deps.peer("monitor", mon_grpc.MonitorServiceStub, deps.tokens("incidents", "admin").own)
    store = IncidentStore(deps.engine)
    incident_engine = IncidentEngine(
        store,
        GrpcSource(collector, heartbeat),
        RuleBook.from_settings(settings, deps.settings(QueueSettings)),
        EngineConfig(
            beat_interval_seconds=settings.beat_interval_seconds,
            worker_down_missed_beats=settings.worker_down_missed_beats,
            stats_stale_minutes=settings.stats_stale_minutes,
            incident_quiet_minutes=settings.incident_quiet_minutes,
            notify_repeat_hours=settings.notify_repeat_hours,
        ),
        clock=clock,
    )
    incident_engine.inhibit_paused_with(
        PausedQueues(BullMQBackend.from_settings(deps.watched_redis, deps.settings(QueueSettings))).paused
    )
    feed = IncidentFeed(store, poll_seconds=options.get("feed_poll_seconds", 1.0))
    incident_engine.on_commit(feed.wake)
    # Always built: channels added to the configuration later must work. Until the stored configuration
    # is read (at once, by the alerting_config loop) it has the environment's channels.
    notifier = Notifier(
        settings,
        deps.engine,
        build_broker(deps.suite_redis_url, deps.core.redis_prefix),
        channels=settings.channels,
        on_delivered=incident_engine.record_notified,
        replay=functools.partial(notified_since, store),
    )
    incident_engine.on_transition(notifier.handle)
    incident_engine.route_with(notifier.route)
    # The routes may be swapped at runtime (Notifier.configure): read them at every evaluation.
    incident_engine.escalate_with(lambda: notifier.routes)
    queue_settings = deps.settings(QueueSettings)
    configs = AlertingConfigs(
        store, lambda: alerting_config.from_environment(settings, queue_settings), incident_engine.now
    )

    def apply(compiled: alerting_config.Compiled) -> None:
        config = replace(
            incident_engine.config,
            worker_down_missed_beats=compiled.worker_down_missed_beats,
            incident_quiet_minutes=compiled.incident_quiet_minutes,
        )
        incident_engine.configure(compiled.rulebook, config)
        notifier.configure(compiled.channels, compiled.routes)

    configs.on_apply(apply)
    servicer = IncidentServicer(incident_engine, feed, monitor, configs=configs, notifier=notifier)
    follower = WorkerFollower(
        incident_engine,
        heartbeat,
        settings.beat_interval_seconds * settings.worker_down_missed_beats,
        clock,
    )

    background: list[Callable[[], Awaitable[None]]] = [
        Every("incident_evaluation", settings.incident_eval_interval_seconds, incident_engine.evaluate),
        Follower("worker_events", follower.run),
        feed.run,
        Every(
            "alerting_config",
            options.get("alerting_config_poll_seconds", 5.0),
            configs.sync,
            first_at_once=True,
        ),
        Resident("notifier", notifier),
        # Audit entries of changes whose process died before sending them (engine.send_kept_audits).
        Every(
            "audit_outbox",
            options.get("audit_outbox_poll_seconds", 30.0),
            functools.partial(incident_engine.send_kept_audits, servicer.send_audit),
            first_at_once=True,
        ),
    ]
    spec = grpc_service(
        deps,
        NEEDS,
        SERVICE_NAME,
        pb_grpc.add_IncidentServiceServicer_to_server,
        servicer,
        background=background,
    )
    return Built(
        grpc=spec, parts=IncidentParts(incident_engine, store, feed, servicer, follower, notifier, configs)
    )


MODULE = Module(
    name="incidents",
    summary="incident rules, lifecycle and notifications",
    needs=NEEDS,
    build=build,
    migrations=MIGRATIONS,
    settings=(IncidentSettings, QueueSettings),
)
