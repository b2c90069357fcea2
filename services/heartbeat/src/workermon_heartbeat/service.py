"""Assembles HeartbeatService for a server: registry, servicer, readiness and background loops."""

from __future__ import annotations

import time

import grpc
import redis.asyncio as aioredis

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.server import ServiceSpec
from workermon_core.settings import Settings

from .servicer import HeartbeatServicer
from .store import Clock, Registry, RegistryConfig

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["HeartbeatService"].full_name


def build(
    settings: Settings, redis: aioredis.Redis, clock: Clock = time.time
) -> tuple[ServiceSpec, HeartbeatServicer]:
    """The ServiceSpec to host, and the servicer (tests reach into it)."""
    registry = Registry(
        redis,
        settings.redis_prefix,
        RegistryConfig(
            online_window=settings.online_window_seconds,
            retention=settings.offline_retention_hours * 3600,
            events_max=settings.worker_events_max,
        ),
        clock=clock,
    )
    servicer = HeartbeatServicer(
        registry,
        beat_interval=settings.beat_interval_seconds,
        command_ttl=settings.command_ttl_seconds,
        sweep_interval=settings.sweep_interval_seconds,
    )

    async def redis_ready() -> None:
        await redis.ping()

    def register(server: grpc.aio.Server) -> None:
        pb_grpc.add_HeartbeatServiceServicer_to_server(servicer, server)

    spec = ServiceSpec(
        name=SERVICE_NAME,
        register=register,
        checks=[redis_ready],
        background=[servicer.run_sweeper, servicer.run_command_listener, servicer.events.run],
    )
    return spec, servicer
