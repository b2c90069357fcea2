"""Assembles MonitorService for a server: board, job actions, peers, audit log, background loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority, action_roles
from workermon_core.db import ping
from workermon_core.peer import LocalAddress, Peer, ServiceTokens
from workermon_core.redis_store import key_prefix
from workermon_core.server import Outage, ServiceSpec
from workermon_core.settings import Settings
from workermon_queues.bullmq import BullMQBackend, BullMQJobs
from workermon_queues.classify import FailureClassifier, parse_rules

from .audit.auditor import SUCCEEDED, Auditor, Target
from .audit.models import AuditAction
from .audit.store import AuditStore
from .board import Board
from .servicer import MonitorServicer

log = structlog.get_logger("workermon.monitor")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MonitorService"].full_name
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
        redis: aioredis.Redis,
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
            )
        except BaseException:
            # Not written: release the claim so this replica (or another) writes it on the retry.
            await self.redis.delete(claim)
            raise
        self.recorded += 1


def build(
    settings: Settings,
    redis: aioredis.Redis,
    queue_redis: aioredis.Redis,
    engine: AsyncEngine,
    authority: TokenAuthority,
    *,
    clock: Callable[[], float] = time.time,
) -> tuple[ServiceSpec, MonitorParts]:
    """The ServiceSpec to host and its parts."""
    own_address = LocalAddress(settings.grpc_host, settings.grpc_port)
    tokens = ServiceTokens(authority, "monitor", "viewer")
    # Shared readings use the service's own (viewer) identity; calls made for one caller carry theirs.
    heartbeat_board = Peer(settings.heartbeat_target or own_address, hb_grpc.HeartbeatServiceStub, tokens.own)
    heartbeat_caller = Peer(
        settings.heartbeat_target or own_address, hb_grpc.HeartbeatServiceStub, tokens.on_behalf
    )
    collector = Peer(settings.collector_target or own_address, col_grpc.CollectorServiceStub, tokens.own)
    incidents = Peer(settings.incidents_target or own_address, inc_grpc.IncidentServiceStub, tokens.own)
    configured = [q.strip() for q in settings.queues.split(",") if q.strip()]
    backend = BullMQBackend(
        queue_redis, prefix=settings.queue_prefix, queues=configured, discover=settings.discover_queues
    )
    classifier = FailureClassifier(parse_rules(settings.failure_rules) if settings.failure_rules else ())
    jobs = BullMQJobs(queue_redis, settings.queue_prefix, classifier)
    board = Board(
        backend,
        heartbeat_board,
        collector,
        incidents=incidents,
        backlog_threshold=settings.backlog_threshold,
        backlog_thresholds=settings.queue_backlog_thresholds,
        display_names=settings.display_names,
        live_max_age=settings.live_max_age_seconds,
        clock=clock,
    )
    audit_store = AuditStore(engine)
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
    )
    recorder = WorkerEventRecorder(heartbeat_board, auditor, redis, settings.redis_prefix)

    async def flush_audit() -> None:
        outage = Outage("audit_flush")
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            try:
                await auditor.flush()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)

    async def prune_audit() -> None:
        while True:
            cutoff = datetime.fromtimestamp(clock(), tz=UTC) - timedelta(days=settings.audit_retention_days)
            pruned = await audit_store.prune(cutoff)
            if pruned:
                log.info("audit_pruned", rows=pruned)
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)

    async def follow_workers() -> None:
        try:
            await recorder.run()
        except grpc.aio.AioRpcError as exc:
            # HeartbeatService restarting or not up yet: the loop restarts us; say it once, quietly.
            log.info("worker_events_interrupted", code=exc.code().name)
            await asyncio.sleep(2.0)

    async def redis_ready() -> None:
        await queue_redis.ping()

    async def database_ready() -> None:
        await ping(engine)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_MonitorServiceServicer_to_server(servicer, server)

    async def close() -> None:
        for peer in (heartbeat_board, heartbeat_caller, collector, incidents):
            await peer.close()
        await jobs.close()

    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        checks=[redis_ready, database_ready],
        background=[follow_workers, flush_audit, prune_audit],
        close=close,
        bound=own_address.bind,
    )
    return spec, MonitorParts(board, jobs, auditor, audit_store, servicer, recorder)
