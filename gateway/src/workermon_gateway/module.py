"""The gateway as a module of the suite: `workermon serve --target gateway` runs it alone, `all` beside
the services. It owns no state: it reaches the services at WORKERMON_GATEWAY_TARGET (else
WORKERMON_MONITOR_TARGET, else this process's own gRPC address) and listens on WORKERMON_HTTP_*."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from workermon_core.modules import Built, Deps, Module, Needs

from .app import HttpHandle, build_app, serve_http
from .assemble import GatewayExtras, gateway_extras
from .settings import GatewaySettings
from .upstream import Upstream

# The suite's Redis holds the token revocations that log out everywhere writes and every process reads.
NEEDS = Needs(suite_redis=True, peers=("heartbeat", "collector", "monitor", "incidents"))
# A gateway stopping lets requests in flight finish for at most this long.
MAX_HTTP_GRACE_SECONDS = 5.0


class Gateway:
    """The HTTP server: API routes from the descriptors, plus login, live stream, metrics, UI."""

    def __init__(
        self,
        deps: Deps,
        *,
        extra_routes: Sequence[BaseRoute] = (),
        middleware: Sequence[Middleware] = (),
        extras: bool = True,
    ) -> None:
        self.deps = deps
        self.settings = deps.settings(GatewaySettings)
        self.extra_routes = list(extra_routes)
        self.middleware = list(middleware)
        self.with_extras = extras
        self.upstream: Upstream | None = None
        self.extras: GatewayExtras | None = None
        self.http: HttpHandle | None = None

    @property
    def target(self) -> str | Callable[[], str]:
        """Where the gateway reaches MonitorService (and every service, when WORKERMON_GATEWAY_TARGET
        names one address for all)."""
        return self.settings.gateway_target or self.deps.peer_target("monitor")

    def target_of(self, service: str) -> str | Callable[[], str]:
        """Where the gateway reaches a gRPC service (full name): WORKERMON_GATEWAY_TARGET for all when
        set, else that service's own WORKERMON_<MODULE>_TARGET, so each may run in processes of its own."""
        if self.settings.gateway_target:
            return self.settings.gateway_target
        return self.deps.peer_target(module_of(service))

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        assert self.http is not None, "the gateway is not started"
        return self.http.url

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self.http is not None, "the gateway is not started"
        return self.http.port

    async def start(self) -> None:
        """Open the upstream and the live stream's subscriptions, then listen."""
        core = self.deps.core
        self.upstream = Upstream(self.target, route=self.target_of)
        routes, layers = list(self.extra_routes), list(self.middleware)
        if self.with_extras:
            self.extras = gateway_extras(
                self.settings,
                core,
                self.deps.authority,
                self.target_of,
                revocations=self.deps.revocation_store(),
            )
            routes += self.extras.routes
            layers = [*self.extras.middleware, *layers]
            await self.extras.start()
        app = build_app(
            self.settings, self.upstream, self.deps.authority, extra_routes=routes, middleware=layers
        )
        self.http = await serve_http(app, core.http_host, core.http_port)

    async def stop(self, grace: float) -> None:
        """Stop listening first (no request reaches a draining service), then the stream and upstream."""
        if self.http is not None:
            await self.http.stop(min(grace, MAX_HTTP_GRACE_SECONDS))
            self.http = None
        if self.extras is not None:
            await self.extras.stop()
            self.extras = None
        if self.upstream is not None:
            await self.upstream.close()
            self.upstream = None


def module_of(service: str) -> str:
    """The module serving a gRPC service: 'heartbeat' for 'workermon.heartbeat.v1.HeartbeatService'."""
    parts = service.split(".")
    return parts[1] if len(parts) >= 3 and parts[0] == "workermon" else "monitor"


def build(deps: Deps) -> Built:
    """The gateway; build options `extra_routes`, `middleware` and `extras` (bool) are for tests."""
    gateway = Gateway(deps, **deps.options_for("gateway"))
    return Built(http=gateway, parts=gateway)


MODULE = Module(
    name="gateway",
    summary="HTTP/JSON API, live stream, login, metrics and the admin UI",
    needs=NEEDS,
    build=build,
    settings=(GatewaySettings,),
)
