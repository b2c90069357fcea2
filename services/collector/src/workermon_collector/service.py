"""Assembles CollectorService for a server: backend, follower, store, schedule, background loops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import redis.asyncio as aioredis
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon.collector.v1 import collector_service_pb2 as pb
from workermon.collector.v1 import collector_service_pb2_grpc as pb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.db import ping
from workermon_core.peer import LocalAddress, Peer, ServiceTokens
from workermon_core.server import Outage, ServiceSpec
from workermon_core.settings import Settings
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.classify import FailureClassifier, parse_rules

from .collector import Clock, Collector, CycleResult
from .follower import EventFollower
from .heartbeat_peer import HeartbeatPeer
from .schedule import build_schedule
from .servicer import CollectorServicer
from .store import SnapshotStore

log = structlog.get_logger("workermon.collector")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CollectorService"].full_name
FOLLOW_INTERVAL_SECONDS = 2.0
EVALUATE_TIMEOUT_SECONDS = 30.0


@dataclass
class CollectorParts:
    """What tests and benchmarks reach into."""

    collector: Collector
    store: SnapshotStore
    follower: EventFollower
    servicer: CollectorServicer
    maintenance: Callable[[], Awaitable[tuple[int, int, int]]]


def build(  # noqa: PLR0917 - the dependencies a process hands over
    settings: Settings,
    redis: aioredis.Redis,
    queue_redis: aioredis.Redis,
    engine: AsyncEngine,
    authority: TokenAuthority,
    redis_url: str,
    *,
    clock: Clock = time.time,
    schedule: bool | None = None,
) -> tuple[ServiceSpec, CollectorParts]:
    """The ServiceSpec to host and its parts."""
    configured = [q.strip() for q in settings.queues.split(",") if q.strip()]
    backend = BullMQBackend(
        queue_redis, prefix=settings.queue_prefix, queues=configured, discover=settings.discover_queues
    )
    classifier = FailureClassifier(parse_rules(settings.failure_rules) if settings.failure_rules else ())
    follower = EventFollower(backend, redis, settings.redis_prefix, classifier)
    minute_retention = timedelta(hours=settings.snapshot_retention_hours)
    rollup_retention = timedelta(days=settings.rollup_retention_days)
    store = SnapshotStore(
        engine, minute_retention=minute_retention, clock=lambda: datetime.fromtimestamp(clock(), tz=UTC)
    )
    own_address = LocalAddress(settings.grpc_host, settings.grpc_port)
    peer = HeartbeatPeer(settings.heartbeat_target or own_address, authority)
    collector = Collector(
        backend,
        follower,
        store,
        redis,
        settings.redis_prefix,
        online_workers=peer.online,
        worker_timings=peer.timings,
        clock=clock,
    )
    servicer = CollectorServicer(collector, store)
    # After each cycle the incident rules run on the new rows (IncidentService.Evaluate, as operator).
    incidents = Peer(
        settings.incidents_target or own_address,
        inc_grpc.IncidentServiceStub,
        ServiceTokens(authority, "collector", "operator").own,
    )
    evaluate_outage = Outage("incident_evaluate")

    async def evaluate(result: CycleResult) -> None:
        request = inc_pb.EvaluateRequest()
        request.minute_time.FromDatetime(result.minute)
        try:
            await incidents.stub.Evaluate(request, timeout=EVALUATE_TIMEOUT_SECONDS)
            evaluate_outage.ok()
        except grpc.aio.AioRpcError as exc:
            evaluate_outage.failed(exc)

    collector.after_cycle.append(evaluate)

    async def maintenance() -> tuple[int, int, int]:
        now = datetime.fromtimestamp(clock(), tz=UTC)
        rolled = await store.rollup(now)
        minutes, hours = await store.prune(now, minute_retention, rollup_retention)
        log.info("maintenance", rollups=rolled, pruned_minutes=minutes, pruned_hours=hours)
        return rolled, minutes, hours

    async def follow_forever() -> None:
        # Between cycles too: a busy queue's capped stream must not outrun the once-a-minute read.
        outage = Outage("event_follow")
        while True:
            try:
                await collector.follow_all()
                await collector.flush_pending()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)
            await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)

    async def run_schedule() -> None:
        plan = build_schedule(redis_url, settings.redis_prefix, collector, maintenance)
        await plan.start()
        try:
            await asyncio.Event().wait()
        finally:
            await plan.stop()

    async def redis_ready() -> None:
        await redis.ping()
        await queue_redis.ping()

    async def database_ready() -> None:
        await ping(engine)

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_CollectorServiceServicer_to_server(servicer, server)

    async def close() -> None:
        await peer.close()
        await incidents.close()

    use_schedule = settings.collector_schedule if schedule is None else schedule
    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        checks=[redis_ready, database_ready],
        background=[follow_forever, *([run_schedule] if use_schedule else [])],
        close=close,
        bound=own_address.bind,
    )
    return spec, CollectorParts(collector, store, follower, servicer, maintenance)
