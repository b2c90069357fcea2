"""MonitorService as a module of the suite: board, job actions, peers, audit log, background loops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import action_roles
from workermon_core.background import Every, Follower
from workermon_core.modules import Built, Deps, Module, Needs, grpc_service
from workermon_core.peer import Peer
from workermon_core.redis_store import AnyRedis, key_prefix
from workermon_queues.bullmq import BullMQBackend, BullMQFlows, BullMQJobs
from workermon_queues.settings import QueueSettings

from .audit.auditor import SUCCEEDED, Auditor, Target
from .audit.models import AuditAction
from .audit.store import AuditStore
from .board import Board
from .migrate import MIGRATIONS
from .servicer import MonitorServicer
from .settings import MonitorSettings

log = structlog.get_logger("workermon.monitor")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MonitorService"].full_name
NEEDS = Needs(
    suite_redis=True, watched_redis=True, database=True, peers=("heartbeat", "collector", "incidents")
)
FLUSH_INTERVAL_SECONDS = 5.0
PRUNE_INTERVAL_SECONDS = 3600.0
FROM_THE_START = "0-0"


@dataclass
class MonitorParts:
    """What tests and benchmarks reach into."""

    board: Board
    jobs: BullMQJobs
    auditor: Auditor
    audit_store: AuditStore
    servicer: MonitorServicer
    worker_events: WorkerEventRecorder


class WorkerEventRecorder:
    """Writes WORKER_ONLINE / WORKER_OFFLINE audit entries from HeartbeatService's WatchWorkers.

    The stream position is kept in Redis so a restart resumes where it stopped, and each event is
    claimed in Redis before it is written, so several MonitorService replicas record it once.
    """

    def __init__(
        self,
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        auditor: Auditor,
        redis: AnyRedis,
        prefix: str,
    ) -> None:
        self.heartbeat = heartbeat
        self.auditor = auditor
        self.redis = redis
        self.base = f"{key_prefix(prefix)}:monitor:worker-events"
        self.recorded = 0

    async def run(self) -> None:
        """Follow the stream until cancelled (the server restarts it after an error)."""
        after = await self.redis.get(f"{self.base}:cursor")
        # No cursor yet (first start): take the whole retained backlog, not "from now", or transitions
        # made while this service was starting would never be recorded. Claims keep each one single.
        after_text = after.decode() if isinstance(after, bytes) else (after or FROM_THE_START)
        stream = self.heartbeat.stub.WatchWorkers(hb_pb.WatchWorkersRequest(after_event_id=after_text))
        async for event in stream:
            await self._record(event)
            await self.redis.set(f"{self.base}:cursor", event.event_id)

    async def _record(self, event: hb_pb.WatchWorkersResponse) -> None:
        kinds = {
            hb_pb.WORKER_EVENT_TYPE_ONLINE: AuditAction.WORKER_ONLINE,
            hb_pb.WORKER_EVENT_TYPE_OFFLINE: AuditAction.WORKER_OFFLINE,
        }
        action = kinds.get(event.type)
        if action is None:
            return
        claim = f"{self.base}:claimed:{event.event_id}"
        if not await self.redis.set(claim, "1", nx=True, ex=7 * 86400):
            return
        report = event.worker.report
        try:
            await self.auditor.record_for(
                actor="system",
                role="system",
                action=action,
                target=Target.of_worker(event.worker_id),
                parameters={},
                outcome=SUCCEEDED,
                result={
                    "reason": event.reason,
                    "event_id": event.event_id,
                    "hostname": report.hostname,
                    "pid": report.pid,
                    "queues": list(report.queues),
                },
                request_id="",
                # A transition recorded late (the database was down, or this service was) keeps the
                # time it happened, not the time it was finally written.
                at=event.event_time.ToDatetime(tzinfo=UTC) if event.HasField("event_time") else None,
            )
        except BaseException:
            # Not written: release the claim so this replica (or another) writes it on the retry.
            await self.redis.delete(claim)
            raise
        self.recorded += 1


def build(deps: Deps) -> Built:
    """Wire the board, the job browser, the audit log and the peers; background: worker transitions
    into the audit log, the retry of audit entries whose completion failed, audit retention."""
    settings = deps.settings(MonitorSettings)
    queues = deps.settings(QueueSettings)
    clock = deps.clock
    tokens = deps.tokens("monitor", "viewer")
    # Shared readings use the service's own (viewer) identity; calls made for one caller carry theirs.
    heartbeat_board = deps.peer("heartbeat", hb_grpc.HeartbeatServiceStub, tokens.own)
    heartbeat_caller = deps.peer("heartbeat", hb_grpc.HeartbeatServiceStub, tokens.on_behalf)
    collector = deps.peer("collector", col_grpc.CollectorServiceStub, tokens.own)
    incidents = deps.peer("incidents", inc_grpc.IncidentServiceStub, tokens.own)
    backend = BullMQBackend.from_settings(deps.watched_redis, queues)
    jobs = BullMQJobs(deps.watched_redis, queues.queue_prefix, queues.classifier)
    board = Board(
        backend,
        heartbeat_board,
        collector,
        incidents=incidents,
        backlog_threshold=queues.backlog_threshold,
        backlog_thresholds=queues.queue_backlog_thresholds,
        display_names=queues.display_names,
        live_max_age=settings.live_max_age_seconds,
        clock=clock,
    )
    audit_store = AuditStore(deps.engine)
    auditor = Auditor(audit_store, action_roles(SERVICE_NAME), clock)
    servicer = MonitorServicer(
        board,
        jobs,
        heartbeat=heartbeat_caller,
        collector=collector,
        auditor=auditor,
        audit_store=audit_store,
        job_data_max_bytes=settings.job_data_max_bytes,
        clock=clock,
        flows=BullMQFlows(jobs),
    )
    recorder = WorkerEventRecorder(heartbeat_board, auditor, deps.redis, deps.core.redis_prefix)
    retention = AuditRetention(audit_store, settings.audit_retention_days, clock)

    async def close() -> None:
        await auditor.close()
        await jobs.close()

    spec = grpc_service(
        deps,
        NEEDS,
        SERVICE_NAME,
        pb_grpc.add_MonitorServiceServicer_to_server,
        servicer,
        background=[
            Follower("worker_events", recorder.run),
            Every("audit_flush", FLUSH_INTERVAL_SECONDS, auditor.flush),
            Every("audit_prune", PRUNE_INTERVAL_SECONDS, retention, first_at_once=True),
        ],
        close=close,
    )
    return Built(grpc=spec, parts=MonitorParts(board, jobs, auditor, audit_store, servicer, recorder))


class AuditRetention:
    """Deletes audit entries older than the retention."""

    def __init__(self, store: AuditStore, days: float, clock: Callable[[], float]) -> None:
        self.store = store
        self.days = days
        self.clock = clock

    async def __call__(self) -> int:
        """Prune once; the number of entries deleted."""
        cutoff = datetime.fromtimestamp(self.clock(), tz=UTC) - timedelta(days=self.days)
        pruned = await self.store.prune(cutoff)
        if pruned:
            log.info("audit_pruned", rows=pruned)
        return pruned


MODULE = Module(
    name="monitor",
    summary="the facade other teams call: board, jobs, actions, audit log",
    needs=NEEDS,
    build=build,
    migrations=MIGRATIONS,
    settings=(MonitorSettings, QueueSettings),
)
