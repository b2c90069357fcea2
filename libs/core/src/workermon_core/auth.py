"""Bearer JWTs: minting, verifying (with a small cache for hot paths) and role checks per RPC."""

from __future__ import annotations

import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import jwt
from google.protobuf import descriptor_pool

from workermon.common.v1 import access_pb2

from .errors import PermissionDenied, Unauthenticated

ROLE_NAMES: dict[str, int] = {
    "viewer": access_pb2.ROLE_VIEWER,
    "operator": access_pb2.ROLE_OPERATOR,
    "admin": access_pb2.ROLE_ADMIN,
    "worker": access_pb2.ROLE_WORKER,
}
_LADDER: dict[int, int] = {access_pb2.ROLE_VIEWER: 1, access_pb2.ROLE_OPERATOR: 2, access_pb2.ROLE_ADMIN: 3}
ALGORITHM = "HS256"
SECRET_FILE = "jwt-secret"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and role."""

    subject: str
    role: str
    expires_at: float


def role_allows(role: str, required: int) -> bool:
    """viewer < operator < admin; worker RPCs admit worker and admin; unannotated RPCs admit nobody."""
    have = ROLE_NAMES.get(role, access_pb2.ROLE_UNSPECIFIED)
    if required == access_pb2.ROLE_UNSPECIFIED:
        return False
    if required == access_pb2.ROLE_WORKER:
        return have in (access_pb2.ROLE_WORKER, access_pb2.ROLE_ADMIN)
    return have in _LADDER and _LADDER[have] >= _LADDER[required]


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured secret, else one generated once and kept (mode 0600) in the data directory."""
    if configured:
        return configured
    path = data_dir / SECRET_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class TokenAuthority:
    """Mints and verifies the suite's tokens; verified tokens are cached until they expire."""

    def __init__(self, secret: str, issuer: str = "workermon", cache_size: int = 4096) -> None:
        if len(secret) < 32:
            raise ValueError("WORKERMON_JWT_SECRET must be at least 32 characters")
        self._secret = secret
        self._issuer = issuer
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size

    def mint(self, subject: str, role: str, ttl_seconds: float = 3600.0) -> str:
        """Sign a token for `subject` with `role`, valid for `ttl_seconds`."""
        if role not in ROLE_NAMES:
            raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
        now = int(time.time())
        claims = {
            "sub": subject,
            "role": role,
            "iss": self._issuer,
            "iat": now,
            "exp": now + int(ttl_seconds),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Check signature, algorithm, issuer and expiry; raise Unauthenticated saying what is wrong."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "sub", "role", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid token: {exc}", reason="TOKEN_INVALID") from None
        role = str(claims["role"])
        if role not in ROLE_NAMES:
            raise Unauthenticated(f"token names an unknown role {role!r}", reason="TOKEN_INVALID")
        principal = Principal(subject=str(claims["sub"]), role=role, expires_at=float(claims["exp"]))
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    """Pull the token out of `authorization: Bearer <token>`."""
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("authorization must be 'Bearer <token>'", reason="TOKEN_MISSING")
            return token.strip()
    raise Unauthenticated("missing bearer token", reason="TOKEN_MISSING")


def method_roles(service_names: list[str]) -> dict[str, int]:
    """Map '/pkg.Service/Method' to the least role its proto declares (workermon.common.v1.min_role)."""
    pool = descriptor_pool.Default()
    roles: dict[str, int] = {}
    for name in service_names:
        service = pool.FindServiceByName(name)
        for method in service.methods:
            options = method.GetOptions()
            roles[f"/{name}/{method.name}"] = int(options.Extensions[access_pb2.min_role])
    return roles


def action_roles(service_name: str) -> dict[str, int]:
    """Map each audited action of a service ('Method') to the role it needs (its action_role)."""
    service = descriptor_pool.Default().FindServiceByName(service_name)
    roles: dict[str, int] = {}
    for method in service.methods:
        role = int(method.GetOptions().Extensions[access_pb2.action_role])
        if role != access_pb2.ROLE_UNSPECIFIED:
            roles[method.name] = role
    return roles


def role_name(role: int) -> str:
    """'operator' for ROLE_OPERATOR."""
    return access_pb2.Role.Name(access_pb2.Role.ValueType(role)).removeprefix("ROLE_").lower()


def authorize(principal: Principal, method: str, required: int) -> None:
    """Raise PermissionDenied unless the principal's role admits the RPC."""
    if not role_allows(principal.role, required):
        needed = role_name(required)
        raise PermissionDenied(
            f"role {principal.role!r} may not call {method.rsplit('/', 1)[-1]} (needs {needed})",
            reason="ROLE_NOT_ALLOWED",
            metadata={"required_role": needed, "role": principal.role},
        )
