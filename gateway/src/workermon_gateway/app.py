"""The gateway application: API routes, OpenAPI and docs, health, the admin UI, and the HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workermon_core import context
from workermon_core.auth import TokenAuthority
from workermon_core.errors import DomainError

from . import errors
from .docs import render_docs
from .health import health_routes
from .openapi import build_openapi
from .routes import SERVICES, ApiRouter, build_routes
from .settings import GatewaySettings
from .static import StaticUI, ui_dir
from .upstream import Upstream

log = structlog.get_logger("workermon.gateway")
access_log = structlog.get_logger("workermon.gateway.access")

REQUEST_ID_HEADER = context.REQUEST_ID_HEADER
# A client's id is kept when it is a sane token; anything else is replaced, so logs stay clean.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Accepts or generates `x-request-id`, exposes it to handlers and logs, and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == REQUEST_ID_HEADER.encode()), ""
        )
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        context.request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=rid):
            await self.app(scope, receive, send_with_id)


class AccessLogMiddleware:
    """One structured log line per request: method, path, status, duration, request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state", {})
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "request_id": state.get("request_id"),
                "client": scope["client"][0] if scope.get("client") else None,
            }
            if "upstream_ms" in state:
                fields["upstream_ms"] = state["upstream_ms"]
            access_log.info("http_request", **fields)


def _rid(request: Request) -> str:
    return str(getattr(request.state, "request_id", None) or context.request_id.get() or uuid.uuid4().hex)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return errors.not_found(request.url.path)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return errors.method_not_allowed(request.method, request.url.path, allowed.split(", "))
    err = DomainError(exc.detail or "request failed", reason="HTTP_ERROR")
    return errors.domain_error_response(err, http=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    rid = _rid(request)
    log.error("gateway_unhandled_error", request_id=rid, error=repr(exc))
    response = errors.internal_error(rid)
    # Sent from outside the request-id middleware: add the header here.
    response.headers[REQUEST_ID_HEADER] = rid
    return response


def build_app(
    settings: GatewaySettings,
    upstream: Upstream,
    authority: TokenAuthority,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    middleware: Sequence[Middleware] = (),
    services: Sequence[str] = SERVICES,
) -> Starlette:
    """The gateway app; `extra_routes` are matched before the API and `middleware` wraps it all."""
    api_routes = build_routes(services)
    base = settings.base_path
    document = build_openapi(api_routes, base)
    docs_html = render_docs(document, base)

    async def openapi_json(request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_html)

    routes: list[BaseRoute] = [
        *extra_routes,
        *health_routes(upstream, services),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        ApiRouter(api_routes, base, upstream, authority),
        StaticUI(ui_dir(settings.admin_ui_dir), api_base=settings.base_path),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware), Middleware(AccessLogMiddleware), *middleware],
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    app.state.openapi = document
    app.state.api_routes = api_routes
    return app


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the process that embeds the gateway handles signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpHandle:
    """A running HTTP server: its bound port, and `stop()`."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL to reach it (loopback for a wildcard bind)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight requests finish within `grace` seconds, then close."""
        self.server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout=grace + 5.0)
        except TimeoutError:
            self.server.force_exit = True
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


async def serve_http(app: ASGIApp, host: str, port: int, *, grace: float = 5.0) -> HttpHandle:
    """Bind host:port (0 picks a free port) and serve `app` with uvicorn in this event loop."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are TCP,
    # and with Nagle on every request after the first on a kept-alive connection waits ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(grace)),
        proxy_headers=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="workermon-http")
    while not server.started:
        if task.done():
            sock.close()
            exc = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"the HTTP server did not start on {host}:{port}") from exc
        await asyncio.sleep(0.01)
    bound = int(sock.getsockname()[1])
    log.info("http_listening", host=host, port=bound)
    return HttpHandle(server=server, task=task, host=host, port=bound)
