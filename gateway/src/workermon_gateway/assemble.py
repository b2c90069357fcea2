"""Everything the gateway serves besides the API routes: login, live stream, metrics, security headers.

One place decides what a running gateway offers, so `workermon up`, `workermon serve --http` and the
tests build the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.peer import Peer, ServiceTokens
from workermon_core.revocation import RevocationStore
from workermon_core.settings import Settings

from .auth_audit import AuthAudit
from .login import login_routes
from .metrics import metrics_middleware, metrics_routes
from .pagerduty import PagerDutyReceiver, pagerduty_routes
from .security import security_middleware
from .settings import GatewaySettings
from .stream.endpoint import stream_routes
from .stream.hub import LiveStream
from .stream.incidents import IncidentFollower
from .users import UserStore, users_path


@dataclass
class GatewayExtras:
    """Routes and middleware to plug into `build_app`, and what must start and stop with the server."""

    routes: list[BaseRoute]
    middleware: list[Middleware]
    live: LiveStream
    peers: list[Peer[object]] = field(default_factory=list)

    async def start(self) -> None:
        """Open the live stream's upstream subscriptions."""
        await self.live.start()

    async def stop(self) -> None:
        """Close the live stream and the peers."""
        await self.live.stop()
        for peer in self.peers:
            await peer.close()


def gateway_extras(
    settings: GatewaySettings,
    core: Settings,
    authority: TokenAuthority,
    target_of: Callable[[str], str | Callable[[], str]],
    revocations: RevocationStore | None = None,
) -> GatewayExtras:
    """Login, live stream (overview, workers, incidents), metrics, CORS and security headers; each
    service is reached where `target_of` (its gRPC full name) says. `revocations` backs log out
    everywhere."""
    tokens = ServiceTokens(authority, "gateway", "viewer")
    # Audit entries are appended with the gateway's own admin identity (CreateAuditLog needs admin).
    auditor_tokens = ServiceTokens(authority, "gateway", "admin")

    def peer(stub: Any, service: Any) -> Peer[Any]:
        return Peer(target_of(service.full_name), stub, tokens.own)

    monitor_service = mon_pb.DESCRIPTOR.services_by_name["MonitorService"]
    monitor = peer(mon_grpc.MonitorServiceStub, monitor_service)
    audit_log: Peer[Any] = Peer(
        target_of(monitor_service.full_name), mon_grpc.MonitorServiceStub, auditor_tokens.own
    )
    heartbeat = peer(hb_grpc.HeartbeatServiceStub, hb_pb.DESCRIPTOR.services_by_name["HeartbeatService"])
    collector = peer(col_grpc.CollectorServiceStub, col_pb.DESCRIPTOR.services_by_name["CollectorService"])
    incident_service = inc_pb.DESCRIPTOR.services_by_name["IncidentService"]
    incidents = peer(inc_grpc.IncidentServiceStub, incident_service)
    # PagerDuty's acknowledgements are made as the subject "pagerduty", so this peer acts on behalf.
    incidents_for_pagerduty: Peer[Any] = Peer(
        target_of(incident_service.full_name), inc_grpc.IncidentServiceStub, tokens.on_behalf
    )
    secret = settings.pagerduty_webhook_secret
    pagerduty = PagerDutyReceiver(
        secret.get_secret_value().split(",") if secret else [], incidents_for_pagerduty
    )
    live = LiveStream(
        monitor,
        heartbeat,
        overview_interval=settings.stream_overview_interval_seconds,
        replay_seconds=settings.stream_replay_seconds,
        sources=[IncidentFollower(incidents)],
    )
    routes: list[BaseRoute] = [
        *login_routes(
            settings,
            UserStore(users_path(settings, core.data_dir)),
            authority,
            revocations=revocations,
            audit=AuthAudit(audit_log),
        ),
        *stream_routes(settings, live, authority),
        *metrics_routes(settings, monitor, collector, heartbeat, incidents=incidents),
        *pagerduty_routes(settings.base_path, pagerduty),
    ]
    # Security headers outermost, so every answer carries them; request metrics see every request.
    middleware = [*security_middleware(settings), *metrics_middleware()]
    peers: list[Peer[object]] = [monitor, heartbeat, collector, incidents, audit_log, incidents_for_pagerduty]
    return GatewayExtras(routes, middleware, live, peers)
