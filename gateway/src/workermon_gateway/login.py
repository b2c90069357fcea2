"""Logging in with a name and password for a bearer token, and asking who a token belongs to.

`POST {base}/v1/auth/login` answers the same 401 whether the name is unknown or the password wrong,
and limits attempts per client address (the address the ASGI server reports: behind a reverse proxy,
run uvicorn with --proxy-headers and --forwarded-allow-ips so that it is the real client's).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workermon_core import validation
from workermon_core.auth import TokenAuthority, bearer_token
from workermon_core.errors import (
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

from .errors import domain_error_response
from .settings import GatewaySettings
from .users import MAX_PASSWORD_LENGTH, UsersFileError, UserStore

_BAD_CREDENTIALS = "invalid username or password"
# A login body is two short strings; anything much larger is not one.
_MAX_BODY_BYTES = 8192
_NO_STORE = {"Cache-Control": "no-store"}


class AttemptLimiter:
    """At most `limit` attempts per client in any sliding `window` seconds.

    Memory stays bounded: clients idle for a whole window are forgotten, and beyond `max_clients`
    the least recently seen are dropped (they merely get a fresh allowance).
    """

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        self._clients: OrderedDict[str, deque[float]] = OrderedDict()

    def hit(self, client: str) -> float | None:
        """Record an attempt; None when allowed, else the seconds until the next one would be."""
        now = self._clock()
        self._forget_idle(now)
        attempts = self._clients.setdefault(client, deque())
        while attempts and attempts[0] <= now - self.window:
            attempts.popleft()
        if len(attempts) >= self.limit:
            return max(attempts[0] + self.window - now, 0.001)
        attempts.append(now)
        # Kept in order of last recorded attempt, which is what _forget_idle relies on.
        self._clients.move_to_end(client)
        while len(self._clients) > self.max_clients:
            self._clients.popitem(last=False)
        return None

    def __len__(self) -> int:
        return len(self._clients)

    def _forget_idle(self, now: float) -> None:
        # Clients are kept in order of last recorded attempt, so the idle ones are all at the front.
        while self._clients:
            oldest = next(iter(self._clients.values()))
            if oldest and oldest[-1] > now - self.window:
                break
            self._clients.popitem(last=False)


def auth_error(err: DomainError, headers: dict[str, str] | None = None) -> JSONResponse:
    """A login or token error in the gateway's error shape; never cached."""
    return domain_error_response(err, headers={**_NO_STORE, **(headers or {})})


def _bad_field(field: str, description: str) -> JSONResponse:
    return auth_error(InvalidArgument(field, description))


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _credentials(request: Request) -> tuple[str, str] | JSONResponse:
    """The username and password of a login body, or the 400 saying what is wrong with it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    # Requiring JSON also makes a cross-site form post impossible (it would need a CORS preflight).
    if content_type != "application/json":
        return _bad_field("body", "must be JSON (Content-Type: application/json)")
    raw = await request.body()
    if len(raw) > _MAX_BODY_BYTES:
        return _bad_field("body", f"must be at most {_MAX_BODY_BYTES} bytes")
    try:
        body = validation.json_document(raw, "body", max_bytes=_MAX_BODY_BYTES)
    except InvalidArgument as exc:
        return auth_error(exc)
    if not isinstance(body, dict):
        return _bad_field("body", 'must be a JSON object {"username": ..., "password": ...}')
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        return _bad_field("username", "must be a non-empty string")
    if not isinstance(password, str) or not password:
        return _bad_field("password", "must be a non-empty string")
    if len(password) > MAX_PASSWORD_LENGTH:
        return _bad_field("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return username, password


def login_routes(
    settings: GatewaySettings,
    users: UserStore,
    authority: TokenAuthority,
    *,
    limiter: AttemptLimiter | None = None,
) -> list[Route]:
    """`POST {base}/v1/auth/login` (name and password for a token) and `GET {base}/v1/auth/me`."""
    attempts = limiter or AttemptLimiter(settings.login_attempts_per_minute)
    ttl = int(settings.token_ttl_seconds)

    async def login(request: Request) -> Response:
        wait = attempts.hit(_client_address(request))
        if wait is not None:
            seconds = math.ceil(wait)
            limited = ResourceExhausted(
                f"too many login attempts; try again in {seconds} s",
                reason="LOGIN_RATE_LIMITED",
                metadata={"retry_after_seconds": str(seconds)},
            )
            return auth_error(limited, headers={"Retry-After": str(seconds)})
        parsed = await _credentials(request)
        if isinstance(parsed, Response):
            return parsed
        username, password = parsed
        try:
            # Argon2 takes tens of milliseconds of CPU: off the event loop.
            role = await run_in_threadpool(users.verify, username, password)
        except UsersFileError:
            unreadable = Unavailable("the users file cannot be read; see the server log", reason="USERS_FILE")
            return auth_error(unreadable)
        if role is None:
            return auth_error(Unauthenticated(_BAD_CREDENTIALS, reason="BAD_CREDENTIALS"))
        token = authority.mint(username, role, ttl)
        return JSONResponse(
            {
                "accessToken": token,
                "tokenType": "Bearer",
                "expiresIn": ttl,
                "role": role,
                "username": username,
            },
            headers=_NO_STORE,
        )

    async def me(request: Request) -> Response:
        header = request.headers.get("authorization")
        try:
            principal = authority.verify(bearer_token((("authorization", header),) if header else None))
        except Unauthenticated as exc:
            return auth_error(exc)
        return JSONResponse(
            {
                "subject": principal.subject,
                "role": principal.role,
                "expiresAt": _iso(principal.expires_at),
            },
            headers=_NO_STORE,
        )

    base = settings.base_path
    return [
        Route(f"{base}/v1/auth/login", login, methods=["POST"], name="auth_login"),
        Route(f"{base}/v1/auth/me", me, methods=["GET"], name="auth_me"),
    ]


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
