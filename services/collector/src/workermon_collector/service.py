"""CollectorService as a module of the suite: backend, follower, store, schedule and background loops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import structlog

from workermon.collector.v1 import collector_service_pb2 as pb
from workermon.collector.v1 import collector_service_pb2_grpc as pb_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon_core.background import Every, Resident
from workermon_core.modules import Built, Deps, Module, Needs, grpc_service
from workermon_core.peer import Peer
from workermon_core.server import Outage
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.settings import QueueSettings

from .collector import Clock, Collector, CycleResult
from .follower import COUNTER_TTL_SECONDS, EventFollower
from .heartbeat_peer import HeartbeatPeer
from .migrate import MIGRATIONS
from .schedule import build_schedule
from .servicer import CollectorServicer
from .settings import CollectorSettings
from .store import SnapshotStore

log = structlog.get_logger("workermon.collector")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CollectorService"].full_name
NEEDS = Needs(suite_redis=True, watched_redis=True, database=True, peers=("heartbeat", "incidents"))
FOLLOW_INTERVAL_SECONDS = 2.0
EVALUATE_TIMEOUT_SECONDS = 30.0


class IncidentEvaluation:
    """After each cycle, the incident rules run on the new rows (IncidentService.Evaluate, as operator)."""

    def __init__(self, incidents: Peer[inc_grpc.IncidentServiceStub]) -> None:
        self.incidents = incidents
        self.outage = Outage("incident_evaluate")

    async def __call__(self, result: CycleResult) -> None:
        """Ask IncidentService to evaluate the cycle's minute; a failure is logged once per outage."""
        request = inc_pb.EvaluateRequest()
        request.minute_time.FromDatetime(result.minute)
        try:
            await self.incidents.stub.Evaluate(request, timeout=EVALUATE_TIMEOUT_SECONDS)
            self.outage.ok()
        except grpc.aio.AioRpcError as exc:
            self.outage.failed(exc)


class Maintenance:
    """Hourly rollups of the minute rows, then retention of both tables."""

    def __init__(self, store: SnapshotStore, settings: CollectorSettings, clock: Clock) -> None:
        self.store = store
        self.minute_retention = timedelta(hours=settings.snapshot_retention_hours)
        self.rollup_retention = timedelta(days=settings.rollup_retention_days)
        self.clock = clock

    async def __call__(self) -> tuple[int, int, int]:
        """Roll up, prune; (rollups written, minute rows pruned, hour rows pruned)."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        rolled = await self.store.rollup(now)
        minutes, hours = await self.store.prune(now, self.minute_retention, self.rollup_retention)
        log.info("maintenance", rollups=rolled, pruned_minutes=minutes, pruned_hours=hours)
        return rolled, minutes, hours


@dataclass
class CollectorParts:
    """What tests and benchmarks reach into."""

    collector: Collector
    store: SnapshotStore
    follower: EventFollower
    servicer: CollectorServicer
    maintenance: Maintenance


def build(deps: Deps) -> Built:
    """Wire the collector; background: the event follower, and the once-a-minute schedule when enabled."""
    settings = deps.settings(CollectorSettings)
    queues = deps.settings(QueueSettings)
    backend = BullMQBackend.from_settings(deps.watched_redis, queues)
    # A newly seen queue is counted as far back as its minute rows are kept (and its counters live).
    history_ms = min(settings.snapshot_retention_hours * 3600, COUNTER_TTL_SECONDS) * 1000
    follower = EventFollower(
        backend, deps.redis, deps.core.redis_prefix, queues.classifier, history_ms=int(history_ms)
    )
    clock = deps.clock
    store = SnapshotStore(
        deps.engine,
        minute_retention=timedelta(hours=settings.snapshot_retention_hours),
        clock=lambda: datetime.fromtimestamp(clock(), tz=UTC),
    )
    peer = HeartbeatPeer(
        deps.peer("heartbeat", hb_grpc.HeartbeatServiceStub, deps.tokens("collector", "viewer").own)
    )
    collector = Collector(
        backend,
        follower,
        store,
        deps.redis,
        deps.core.redis_prefix,
        online_workers=peer.online,
        worker_timings=peer.timings,
        clock=clock,
    )
    servicer = CollectorServicer(collector, store)
    incidents = deps.peer("incidents", inc_grpc.IncidentServiceStub, deps.tokens("collector", "operator").own)
    collector.after_cycle.append(IncidentEvaluation(incidents))
    maintenance = Maintenance(store, settings, clock)

    # Between cycles too: a busy queue's capped stream must not outrun the once-a-minute read.
    background: list[Callable[[], Awaitable[None]]] = [
        Every("event_follow", FOLLOW_INTERVAL_SECONDS, collector.follow_between_cycles, first_at_once=True)
    ]
    if settings.collector_schedule:
        plan = build_schedule(deps.suite_redis_url, deps.core.redis_prefix, collector, maintenance)
        background.append(Resident("collector_schedule", plan))
    spec = grpc_service(
        deps,
        NEEDS,
        SERVICE_NAME,
        pb_grpc.add_CollectorServiceServicer_to_server,
        servicer,
        background=background,
    )
    return Built(grpc=spec, parts=CollectorParts(collector, store, follower, servicer, maintenance))


MODULE = Module(
    name="collector",
    summary="per-minute snapshots of every queue, rollups and history",
    needs=NEEDS,
    build=build,
    migrations=MIGRATIONS,
    settings=(CollectorSettings, QueueSettings),
)
