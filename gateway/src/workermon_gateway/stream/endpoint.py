"""The SSE endpoint of the live stream: token check, Last-Event-ID resume, keep-alives, slow clients."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import parse_qsl, urlencode

import anyio
from sse_starlette import EventSourceResponse
from sse_starlette.sse import SendTimeoutError
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from workermon_core.auth import Principal, bearer_token
from workermon_core.errors import PermissionDenied, Unauthenticated

from ..errors import domain_error_response
from ..settings import GatewaySettings
from .hub import LiveStream

KEEPALIVE_SECONDS = 15.0


SEND_TIMEOUT_SECONDS = 30.0


class Verifier(Protocol):
    """What checks a bearer token (TokenAuthority, or any verifier with the same method)."""

    def verify(self, token: str) -> Principal:
        """The token's principal, or Unauthenticated."""
        ...


def _redact_token(scope: Scope) -> None:
    # The access log prints the query string: keep the token out of it (and out of anything after).
    raw = scope.get("query_string", b"")
    if b"access_token" not in raw:
        return
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    scope["query_string"] = urlencode(
        [(k, "REDACTED" if k == "access_token" else v) for k, v in pairs]
    ).encode("latin-1")


class StreamEndpoint:
    """The ASGI endpoint of the stream: authenticate, subscribe, stream until closed or dropped."""

    def __init__(
        self,
        live: LiveStream,
        authority: Verifier,
        *,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        send_timeout: float = SEND_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        self.authority = authority
        self.keepalive_seconds = keepalive_seconds
        self.send_timeout = send_timeout
        self.clock = clock

    def _principal(self, request: Request) -> Principal:
        header = request.headers.get("authorization")
        if header is not None:
            token = bearer_token((("authorization", header),))
        else:
            token = request.query_params.get("access_token", "").strip()
            if not token:
                raise Unauthenticated(
                    "missing bearer token: send 'Authorization: Bearer <token>' or ?access_token=<token>"
                )
        return self.authority.verify(token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one client."""
        request = Request(scope, receive)
        try:
            principal = self._principal(request)
        except Unauthenticated as exc:
            await domain_error_response(exc)(scope, receive, send)
            return
        finally:
            _redact_token(scope)
        if principal.role == "worker":
            denied = domain_error_response(
                PermissionDenied("role 'worker' may not watch the stream", reason="ROLE_NOT_ALLOWED")
            )
            await denied(scope, receive, send)
            return
        last = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
        sub = self.live.subscribe(last, expires_at=principal.expires_at)
        response = EventSourceResponse(
            sub.frames(self.clock),
            ping=self.keepalive_seconds,
            sep="\n",
            send_timeout=self.send_timeout,
        )
        try:
            with anyio.CancelScope() as cancel_scope:
                sub.cancel_scope = cancel_scope
                await response(scope, receive, send)
        except SendTimeoutError:
            self.live.drop(sub, f"a write took more than {self.send_timeout}s")
        finally:
            self.live.unsubscribe(sub)


def stream_routes(
    settings: GatewaySettings,
    live: LiveStream,
    authority: Verifier,
    *,
    keepalive_seconds: float = KEEPALIVE_SECONDS,
    send_timeout: float = SEND_TIMEOUT_SECONDS,
) -> list[Route]:
    """`GET {base_path}/v1/stream`: the live stream, for any role but `worker`.

    The token comes from `Authorization: Bearer` or, since a browser's EventSource cannot send headers,
    an `access_token` query parameter (redacted from the access log).
    """
    endpoint = StreamEndpoint(live, authority, keepalive_seconds=keepalive_seconds, send_timeout=send_timeout)
    return [Route(f"{settings.base_path}/v1/stream", endpoint, methods=["GET"], name="stream")]
