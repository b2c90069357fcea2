"""Browser-facing protections: CORS for an allow-list of origins, and security headers on every response.

The headers are added by a plain ASGI middleware (not BaseHTTPMiddleware), so streamed responses such
as server-sent events pass through untouched apart from their first message.
"""

from __future__ import annotations

import re

from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workermon_core.settings import ConfigError, env_name

from .settings import GatewaySettings

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
)
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-Id", "Last-Event-ID"]
CORS_EXPOSED = ["Retry-After", "X-Request-Id"]
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|\*")


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP response, and no-store to API responses.

    A header the application set itself is left as it is.
    """

    def __init__(self, app: ASGIApp, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application, adding the headers to its response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        is_api = path == self.api_prefix.rstrip("/") or path.startswith(self.api_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
                if is_api and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cors_origins(settings: GatewaySettings) -> list[str]:
    """The allowed origins from WORKERMON_CORS_ORIGINS; ConfigError naming it on a malformed one."""
    origins = [item.strip().rstrip("/") for item in settings.cors_origins.split(",") if item.strip()]
    for origin in origins:
        if not _ORIGIN_RE.fullmatch(origin):
            raise ConfigError(
                f"{env_name('cors_origins', GatewaySettings)}: {origin!r} is not an origin such as https://ops.example.com"
            )
    return origins


def api_prefix(settings: GatewaySettings) -> str:
    """Paths whose responses are API answers: everything under base_path, or /v1/ without one."""
    return f"{settings.base_path}/" if settings.base_path else "/v1/"


def security_middleware(settings: GatewaySettings) -> list[Middleware]:
    """Security headers (outermost, so even CORS preflights carry them), then CORS when configured."""
    middleware = [Middleware(SecurityHeadersMiddleware, api_prefix=api_prefix(settings))]
    origins = cors_origins(settings)
    if origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=CORS_METHODS,
                allow_headers=CORS_HEADERS,
                expose_headers=CORS_EXPOSED,
                # Bearer tokens travel in a header, never in cookies: credentials are not needed.
                allow_credentials=False,
                max_age=600,
            )
        )
    return middleware
