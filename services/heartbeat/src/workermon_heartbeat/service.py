"""HeartbeatService as a module of the suite: the registry in the suite's Redis, the servicer, its loops."""

from __future__ import annotations

from dataclasses import dataclass

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.modules import Built, Deps, Module, Needs, grpc_service
from workermon_queues.settings import QueueSettings

from .servicer import HeartbeatServicer
from .settings import HeartbeatSettings
from .store import Registry, RegistryConfig
from .uninstrumented import ConnectionWatch

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["HeartbeatService"].full_name
NEEDS = Needs(suite_redis=True)


@dataclass
class HeartbeatParts:
    """What tests and benchmarks reach into."""

    registry: Registry
    servicer: HeartbeatServicer
    watch: ConnectionWatch


def build(deps: Deps) -> Built:
    """Wire the registry and the servicer; background: the offline sweeper, commands, the event feed."""
    settings = deps.settings(HeartbeatSettings)
    registry = Registry(
        deps.redis,
        deps.core.redis_prefix,
        RegistryConfig(
            online_window=settings.online_window_seconds,
            retention=settings.offline_retention_hours * 3600,
            events_max=settings.worker_events_max,
            history_points=settings.worker_history_minutes,
        ),
        clock=deps.clock,
    )
    # The watched Redis is not among NEEDS: beats must go on, and the service stay ready, without it.
    watch = ConnectionWatch(
        deps.watched_redis,
        registry,
        deps.settings(QueueSettings).queue_prefix,
        settings.connection_scan_seconds,
        clock=deps.clock,
    )
    servicer = HeartbeatServicer(
        registry,
        beat_interval=settings.beat_interval_seconds,
        command_ttl=settings.command_ttl_seconds,
        sweep_interval=settings.sweep_interval_seconds,
        watch=watch,
    )

    spec = grpc_service(
        deps,
        NEEDS,
        SERVICE_NAME,
        pb_grpc.add_HeartbeatServiceServicer_to_server,
        servicer,
        background=[servicer.run_sweeper, servicer.run_command_listener, servicer.events.run, watch.run],
    )
    return Built(grpc=spec, parts=HeartbeatParts(registry, servicer, watch))


MODULE = Module(
    name="heartbeat",
    summary="worker registry: beats, commands, transitions",
    needs=NEEDS,
    build=build,
    settings=(HeartbeatSettings, QueueSettings),
)
