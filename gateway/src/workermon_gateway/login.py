"""Logging in with a name and password for a bearer token, refreshing it, logging out (everywhere),
and asking who a token belongs to.

`POST {base}/v1/auth/login` answers the same 401 whether the name is unknown or the password wrong,
and limits attempts per client address (the address the ASGI server reports: behind a reverse proxy,
run uvicorn with --proxy-headers and --forwarded-allow-ips so that it is the real client's).

Access tokens are short-lived (WORKERMON_TOKEN_TTL_SECONDS). Login also sets a refresh token in an
httpOnly, SameSite=Strict cookie scoped to `{base}/v1/auth`, which `POST {base}/v1/auth/refresh`
exchanges for a new access token (and a new cookie) while the user still exists and has not been
logged out everywhere since the cookie was issued; the role is read again from the users file.

Every login is audited (workermon_gateway.auth_audit): a refused one best-effort (the refusal stands
whether or not the audit log can be written: refusing is never less safe), a successful one before the
token is issued: while the audit log cannot be written, logins are refused with 503 AUDIT_UNAVAILABLE
rather than done unaudited. Rate-limited attempts and malformed bodies are not audited (the limiter
bounds them per address; the log would only fill with noise).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workermon.common.v1 import access_pb2
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon_core import validation
from workermon_core.auth import Principal, TokenAuthority, authorize, bearer_token
from workermon_core.errors import (
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from workermon_core.revocation import RevocationStore

from .auth_audit import ANONYMOUS, AuthAudit
from .errors import domain_error_response
from .settings import GatewaySettings
from .users import MAX_PASSWORD_LENGTH, UserError, UsersFileError, UserStore, check_name

log = structlog.get_logger("workermon.gateway.login")

_BAD_CREDENTIALS = "invalid username or password"
# A login body is two short strings; anything much larger is not one.
_MAX_BODY_BYTES = 8192
_NO_STORE = {"Cache-Control": "no-store"}
REFRESH_COOKIE = "workermon_refresh"


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


def _principal(request: Request, authority: TokenAuthority) -> Principal:
    header = request.headers.get("authorization")
    return authority.verify(bearer_token((("authorization", header),) if header else None))


class _Sessions:
    """The handlers: login, refresh, logout, log out everywhere (own, or a user's as admin), me."""

    def __init__(
        self,
        settings: GatewaySettings,
        users: UserStore,
        authority: TokenAuthority,
        limiter: AttemptLimiter,
        *,
        revocations: RevocationStore | None,
        audit: AuthAudit | None,
    ) -> None:
        self.users = users
        self.authority = authority
        self.attempts = limiter
        self.revocations = revocations
        self.audit = audit
        self.ttl = int(settings.token_ttl_seconds)
        self.refresh_ttl = int(settings.refresh_token_ttl_seconds)
        self.cookie_path = f"{settings.base_path}/v1/auth"

    async def login(self, request: Request) -> Response:
        """Name and password for an access token (and a refresh cookie)."""
        address = _client_address(request)
        wait = self.attempts.hit(address)
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
            role = await run_in_threadpool(self.users.verify, username, password)
        except UsersFileError:
            unreadable = Unavailable("the users file cannot be read; see the server log", reason="USERS_FILE")
            return auth_error(unreadable)
        if role is None:
            await self._audit_refused(username, address, "BAD_CREDENTIALS")
            return auth_error(Unauthenticated(_BAD_CREDENTIALS, reason="BAD_CREDENTIALS"))
        if self.audit is not None:
            try:
                await self.audit.write(
                    mon_pb.AUDIT_ACTION_LOGIN,
                    actor=username,
                    role=role,
                    user=username,
                    outcome=mon_pb.AUDIT_OUTCOME_SUCCEEDED,
                    parameters={"username": username, "address": address},
                )
            except Unavailable as exc:
                return auth_error(Unavailable(f"login refused: {exc.message}", reason="AUDIT_UNAVAILABLE"))
        return self._tokens(request, username, role)

    async def refresh(self, request: Request) -> Response:
        """The refresh cookie for a new access token (and a new cookie)."""
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            return auth_error(Unauthenticated("no refresh token; log in", reason="TOKEN_MISSING"))
        try:
            grant = self.authority.verify_refresh(token)
            role = self.users.role_of(grant.subject)
        except Unauthenticated as exc:
            return self._cleared(auth_error(exc))
        except UsersFileError:
            return auth_error(
                Unavailable("the users file cannot be read; see the server log", reason="USERS_FILE")
            )
        if role is None:
            gone = Unauthenticated(
                f"user {grant.subject!r} no longer exists; log in again", reason="TOKEN_REVOKED"
            )
            return self._cleared(auth_error(gone))
        return self._tokens(request, grant.subject, role)

    async def logout(self, request: Request) -> Response:
        """Forget this browser's refresh cookie (other sessions and issued tokens stay valid)."""
        return self._cleared(Response(status_code=204, headers=_NO_STORE))

    async def logout_all(self, request: Request) -> Response:
        """Revoke every token of the caller, in every service."""
        try:
            principal = _principal(request, self.authority)
        except Unauthenticated as exc:
            return auth_error(exc)
        answer = await self._revoke(request, principal, principal.subject)
        return self._cleared(answer) if answer.status_code == 200 else answer

    async def logout_user(self, request: Request) -> Response:
        """Revoke every token of the named user, in every service (admin)."""
        name = str(request.path_params["name"])
        try:
            principal = _principal(request, self.authority)
            authorize(principal, "/auth/LogoutUserEverywhere", access_pb2.ROLE_ADMIN)
            check_name(name)
        except DomainError as exc:
            return auth_error(exc)
        except UserError as exc:
            return _bad_field("name", str(exc))
        return await self._revoke(request, principal, name)

    async def me(self, request: Request) -> Response:
        """Who the bearer token belongs to."""
        try:
            principal = _principal(request, self.authority)
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

    async def _revoke(self, request: Request, principal: Principal, subject: str) -> Response:
        if self.revocations is None:
            return auth_error(
                Unavailable("token revocation is not set up here", reason="REVOCATION_UNAVAILABLE")
            )
        if self.audit is not None:
            try:
                await self.audit.write(
                    mon_pb.AUDIT_ACTION_LOGOUT_ALL,
                    actor=principal.subject,
                    role=principal.role,
                    user=subject,
                    outcome=mon_pb.AUDIT_OUTCOME_SUCCEEDED,
                    parameters={"address": _client_address(request)},
                )
            except Unavailable as exc:
                return auth_error(exc)
        try:
            at = await self.revocations.revoke(subject)
        except Exception as exc:
            log.error("revocation_failed", subject=subject, error=str(exc))
            down = Unavailable(
                f"tokens could not be revoked: the suite's Redis did not answer ({exc})",
                reason="REVOCATION_UNAVAILABLE",
            )
            return auth_error(down)
        return JSONResponse({"subject": subject, "revokedAt": _iso_ms(at)}, headers=_NO_STORE)

    async def _audit_refused(self, username: str, address: str, reason: str) -> None:
        if self.audit is None:
            return
        try:
            await self.audit.write(
                mon_pb.AUDIT_ACTION_LOGIN,
                actor=ANONYMOUS,
                role="none",
                user=username,
                outcome=mon_pb.AUDIT_OUTCOME_DENIED,
                parameters={"username": username[:128], "address": address},
                result={"reason": reason},
            )
        except Unavailable as exc:
            # The login is refused all the same; the server log keeps what the audit log could not.
            log.warning(
                "login_refusal_unaudited", username=username[:128], address=address, error=exc.message
            )

    def _tokens(self, request: Request, username: str, role: str) -> Response:
        response = JSONResponse(
            {
                "accessToken": self.authority.mint(username, role, self.ttl),
                "tokenType": "Bearer",
                "expiresIn": self.ttl,
                "role": role,
                "username": username,
            },
            headers=_NO_STORE,
        )
        response.set_cookie(
            REFRESH_COOKIE,
            self.authority.mint_refresh(username, self.refresh_ttl),
            max_age=self.refresh_ttl,
            path=self.cookie_path,
            # Secure whenever the browser reached us over HTTPS (behind a proxy: with --proxy-headers).
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    def _cleared(self, response: Response) -> Response:
        response.delete_cookie(REFRESH_COOKIE, path=self.cookie_path, httponly=True, samesite="strict")
        return response


def login_routes(
    settings: GatewaySettings,
    users: UserStore,
    authority: TokenAuthority,
    *,
    limiter: AttemptLimiter | None = None,
    revocations: RevocationStore | None = None,
    audit: AuthAudit | None = None,
) -> list[Route]:
    """`POST {base}/v1/auth/login` (name and password for a token), `POST .../refresh`, `POST .../logout`,
    `POST .../logout-all`, `POST .../users/{name}/logout-all` (admin) and `GET .../me`."""
    handlers = _Sessions(
        settings,
        users,
        authority,
        limiter or AttemptLimiter(settings.login_attempts_per_minute),
        revocations=revocations,
        audit=audit,
    )
    auth = f"{settings.base_path}/v1/auth"
    return [
        Route(f"{auth}/login", handlers.login, methods=["POST"], name="auth_login"),
        Route(f"{auth}/refresh", handlers.refresh, methods=["POST"], name="auth_refresh"),
        Route(f"{auth}/logout", handlers.logout, methods=["POST"], name="auth_logout"),
        Route(f"{auth}/logout-all", handlers.logout_all, methods=["POST"], name="auth_logout_all"),
        Route(
            f"{auth}/users/{{name}}/logout-all",
            handlers.logout_user,
            methods=["POST"],
            name="auth_logout_user",
        ),
        Route(f"{auth}/me", handlers.me, methods=["GET"], name="auth_me"),
    ]


def _iso_ms(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
