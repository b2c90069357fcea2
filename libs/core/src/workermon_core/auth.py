"""Bearer JWTs: minting, verifying (with a small cache for hot paths) and role checks per RPC.

The suite mints HS256 tokens with its own secret. It also accepts RS256 tokens from an identity
provider whose public keys are configured as a PEM file (WORKERMON_JWT_PUBLIC_KEY_FILE) and/or a JWKS
file (WORKERMON_JWKS_FILE); both are read once at start, never fetched over the network.

The role comes from the `role` claim (one of viewer, operator, admin, worker). Identity providers
often put a list instead: an RS256 token without `role` may carry `roles`, and the highest suite role
in it is used (admin > operator > viewer > worker); names that are not suite roles are ignored.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from google.protobuf import descriptor_pool

from workermon.common.v1 import access_pb2

from .errors import PermissionDenied, Unauthenticated
from .jwks import JwksSource
from .private_files import private_dir, private_file, write_private_file
from .revocation import RevocationList
from .settings import ConfigError, env_name

if TYPE_CHECKING:
    from .settings import Settings

ROLE_NAMES: dict[str, int] = {
    "viewer": access_pb2.ROLE_VIEWER,
    "operator": access_pb2.ROLE_OPERATOR,
    "admin": access_pb2.ROLE_ADMIN,
    "worker": access_pb2.ROLE_WORKER,
}
_LADDER: dict[int, int] = {access_pb2.ROLE_VIEWER: 1, access_pb2.ROLE_OPERATOR: 2, access_pb2.ROLE_ADMIN: 3}
ALGORITHM = "HS256"
SECRET_FILE = "jwt-secret"
# `system` is the actor of what services do on their own (audit entries, incidents): no person and no
# token may act under that name, so an audit entry saying "system" is always the suite's.
SYSTEM_SUBJECT = "system"
RESERVED_SUBJECTS = frozenset({SYSTEM_SUBJECT})
# A refresh token carries `typ: refresh`; it buys access tokens from the gateway and opens nothing else.
REFRESH_TYPE = "refresh"
# The claims `mint` sets itself; extra claims given to it may not replace them.
_REGISTERED = frozenset({"sub", "role", "iss", "iat", "exp", "typ", "act", "wid"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject and role; `actor` names the suite service that minted the
    token to act for the subject (only the suite's own HS256 tokens carry one); `worker` is the worker
    id or glob pattern a worker token is bound to."""

    subject: str
    role: str
    expires_at: float
    actor: str | None = None
    worker: str | None = None
    # When the token was issued (its `iat`); None when it does not say. Revocation compares against it.
    issued_at: float | None = None

    def may_act_as_worker(self, worker_id: str) -> bool:
        """Whether this caller may beat, say goodbye and answer commands as `worker_id`: an admin may
        (for diagnosis); a worker token only for the id or pattern it is bound to."""
        if self.role == "admin":
            return True
        return self.role == "worker" and self.worker is not None and fnmatchcase(worker_id, self.worker)


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """A verified refresh token: whose it is and when it was issued and expires."""

    subject: str
    issued_at: float
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
    private_dir(data_dir)
    if not write_private_file(path, secrets.token_urlsafe(48)):
        # Kept by an older version, or copied in by hand: nobody but the owner may read it.
        private_file(path)
    return path.read_text().strip()


# Which suite role wins when an identity provider lists several.
_ROLES_PREFERENCE = ("admin", "operator", "viewer", "worker")
RS_ALGORITHM = "RS256"
_MIN_RSA_BITS = 2048


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """An RS256 public key; `kid` is None for a PEM key (used whatever kid a token names)."""

    kid: str | None
    key: RSAPublicKey


def _refused(message: str, check: str) -> Unauthenticated:
    # `check` lets clients and logs tell the failures apart while the reason stays TOKEN_INVALID.
    return Unauthenticated(message, reason="TOKEN_INVALID", metadata={"check": check})


def _revoked() -> Unauthenticated:
    # Its own reason: a client must log in again (a refresh would be refused too), not retry.
    return Unauthenticated(
        "token has been revoked (user removed or logged out everywhere); log in again",
        reason="TOKEN_REVOKED",
        metadata={"check": "revocation"},
    )


def _issued_at(claims: dict[str, Any]) -> float | None:
    value = claims.get("iat")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Mints HS256 tokens and verifies HS256 or RS256 ones; verified tokens are cached until they expire."""

    def __init__(
        self,
        secret: str,
        issuer: str = "workermon",
        cache_size: int = 4096,
        *,
        rsa_keys: Sequence[VerificationKey] = (),
        audience: str | None = None,
        revocations: RevocationList | None = None,
        jwks: JwksSource | None = None,
    ) -> None:
        if len(secret) < 32:
            raise ValueError("WORKERMON_JWT_SECRET must be at least 32 characters")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._rsa_keys = tuple(rsa_keys)
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._cache_size = cache_size
        # Consulted on every verify (cached or not), so a revoked token stops working within the
        # record's refresh period (workermon_core.revocation).
        self.revocations = revocations
        # RS256 keys fetched from a URL (WORKERMON_JWKS_URL), beside the fixed ones.
        self.jwks = jwks

    @property
    def accepts_rs256(self) -> bool:
        """Whether any RS256 public key is configured."""
        return bool(self._rsa_keys) or self.jwks is not None

    def mint(
        self,
        subject: str,
        role: str,
        ttl_seconds: float = 3600.0,
        *,
        actor: str | None = None,
        worker: str | None = None,
        **claims: Any,
    ) -> str:
        """Sign a token for `subject` with `role`, valid for `ttl_seconds`; `actor` marks a suite service
        acting for the subject, `worker` binds a worker token to a worker id or glob pattern, and
        `claims` adds others."""
        if role not in ROLE_NAMES:
            raise ValueError(f"role must be one of {', '.join(ROLE_NAMES)}")
        clashing = sorted(_REGISTERED & claims.keys())
        if clashing:
            raise ValueError(f"claims {', '.join(clashing)} are set by mint itself")
        if actor is not None:
            claims["act"] = {"sub": actor}
        if worker is not None:
            check_worker_binding(worker)
            claims[WORKER_CLAIM] = worker
        return self._sign(subject, ttl_seconds, {**claims, "role": role})

    def mint_refresh(self, subject: str, ttl_seconds: float) -> str:
        """Sign a refresh token for `subject` (no role: the role is looked up again at each refresh)."""
        return self._sign(subject, ttl_seconds, {"typ": REFRESH_TYPE, "jti": secrets.token_urlsafe(12)})

    def _sign(self, subject: str, ttl_seconds: float, claims: dict[str, Any]) -> str:
        if subject in RESERVED_SUBJECTS:
            raise ValueError(f"subject {subject!r} is reserved for the suite itself")
        now = time.time()
        payload = {
            **claims,
            "sub": subject,
            "iss": self._issuer,
            # Fractional (milliseconds, rounded down so never after the minting): a revocation at T must
            # void a token minted earlier in the same second, and leave one minted after it (a fresh
            # login right after "log out everywhere") valid.
            "iat": math.floor(now * 1000) / 1000,
            "exp": int(now) + int(ttl_seconds),
        }
        return jwt.encode(payload, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """Check algorithm, signature, issuer, claims and expiry; raise Unauthenticated saying why not."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at > time.time():
                self._cache.move_to_end(token)
                self._check_revoked(cached)
                return cached
            del self._cache[token]
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _refused(f"malformed token: {exc}", "format") from None
        algorithm = header.get("alg")
        if algorithm == ALGORITHM:
            claims = self._decode_hs256(token)
        elif algorithm == RS_ALGORITHM:
            claims = self._decode_rs256(token, header.get("kid"))
        elif isinstance(algorithm, str) and algorithm.lower() == "none":
            raise _refused("unsigned tokens (alg none) are refused", "algorithm")
        else:
            raise _refused(f"token algorithm {algorithm!r} is refused; use HS256 or RS256", "algorithm")
        if claims.get("typ") == REFRESH_TYPE:
            raise _refused("a refresh token is not an access token; exchange it at the gateway", "type")
        role = self._role(claims, rs256=algorithm == RS_ALGORITHM)
        principal = Principal(
            subject=self._subject(claims),
            role=role,
            expires_at=float(claims["exp"]),
            issued_at=_issued_at(claims),
            # Only a token signed with the suite's own secret can speak for a suite service.
            actor=_actor(claims) if algorithm == ALGORITHM else None,
            worker=_worker_binding(claims),
        )
        self._check_revoked(principal)
        self._cache[token] = principal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def verify_refresh(self, token: str) -> RefreshGrant:
        """Check a refresh token (HS256, `typ: refresh`, not revoked); Unauthenticated saying why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise _refused(f"malformed token: {exc}", "format") from None
        if header.get("alg") != ALGORITHM:
            raise _refused("refresh tokens are the suite's own (HS256)", "algorithm")
        claims = self._decode(token, self._secret, ALGORITHM)
        if claims.get("typ") != REFRESH_TYPE:
            raise _refused("not a refresh token", "type")
        issued_at = _issued_at(claims)
        if issued_at is None:
            raise _refused("token lacks the 'iat' claim", "claims")
        grant = RefreshGrant(self._subject(claims), issued_at, float(claims["exp"]))
        if self.revocations is not None and self.revocations.revoked(grant.subject, grant.issued_at):
            raise _revoked()
        return grant

    @staticmethod
    def _subject(claims: dict[str, Any]) -> str:
        subject = str(claims["sub"])
        if subject in RESERVED_SUBJECTS:
            raise _refused(f"token subject {subject!r} is reserved for the suite itself", "subject")
        return subject

    def _check_revoked(self, principal: Principal) -> None:
        if self.revocations is not None and self.revocations.revoked(principal.subject, principal.issued_at):
            raise _revoked()

    def _decode_hs256(self, token: str) -> dict[str, Any]:
        try:
            return self._decode(token, self._secret, ALGORITHM)
        except Unauthenticated as exc:
            if exc.metadata.get("check") == "signature" and self._signed_with_public_key(token):
                raise _refused(
                    "HS256 token signed with the RS256 public key is refused (algorithm confusion)",
                    "algorithm",
                ) from None
            raise

    def _signed_with_public_key(self, token: str) -> bool:
        # Only names an algorithm-confusion attempt precisely; never used to accept a token.
        signing_input, _, signature = token.rpartition(".")
        try:
            sent = _b64url(signature)
        except (binascii.Error, ValueError):
            return False
        pems = (
            k.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            for k in self._all_rsa_keys()
        )
        return any(
            hmac.compare_digest(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest(), sent)
            for pem in pems
        )

    def _all_rsa_keys(self) -> tuple[VerificationKey, ...]:
        return self._rsa_keys + (self.jwks.keys() if self.jwks is not None else ())

    def _decode_rs256(self, token: str, kid: object) -> dict[str, Any]:
        if not self.accepts_rs256:
            raise _refused("RS256 tokens are refused: no public key is configured", "algorithm")
        if kid is not None and not isinstance(kid, str):
            raise _refused("token header 'kid' must be a string", "format")
        rsa_keys = self._all_rsa_keys()
        candidates = [k.key for k in rsa_keys if kid is not None and k.kid == kid]
        if not candidates:
            candidates = [k.key for k in rsa_keys if k.kid is None]
        if not candidates and kid is None and len(rsa_keys) == 1:
            candidates = [rsa_keys[0].key]
        if not candidates:
            if kid is None:
                raise _refused("token names no key id (kid) and several keys are configured", "key")
            if self.jwks is not None and self.jwks.unknown_kid(kid):
                raise _refused(
                    f"token is signed with a key id {kid!r} not known yet; the key set is being "
                    "fetched again, retry shortly",
                    "key",
                )
            raise _refused(f"token is signed with an unknown key id {kid!r}", "key")
        last: Unauthenticated | None = None
        for key in candidates:
            try:
                return self._decode(token, key, RS_ALGORITHM)
            except Unauthenticated as exc:
                if exc.metadata.get("check") != "signature":
                    raise
                last = exc
        assert last is not None
        raise last

    def _decode(self, token: str, key: str | RSAPublicKey, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(
                "token has expired", reason="TOKEN_EXPIRED", metadata={"check": "expiry"}
            ) from None
        except jwt.InvalidSignatureError:
            raise _refused("token signature does not verify", "signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(f"token lacks the {exc.claim!r} claim", "claims") from None
        except jwt.InvalidIssuerError:
            raise _refused(f"token issuer is not {self._issuer!r}", "issuer") from None
        except jwt.InvalidAudienceError:
            wanted = repr(self._audience) if self._audience else "none (no audience is configured)"
            raise _refused(f"token audience is not accepted; expected {wanted}", "audience") from None
        except jwt.ImmatureSignatureError:
            raise _refused("token is not valid yet", "expiry") from None
        except jwt.InvalidTokenError as exc:
            raise _refused(f"invalid token: {exc}", "format") from None
        return claims

    @staticmethod
    def _role(claims: dict[str, Any], *, rs256: bool) -> str:
        if "role" in claims:
            role = claims["role"]
            if not isinstance(role, str) or role not in ROLE_NAMES:
                raise _refused(f"token names an unknown role {role!r}", "role")
            return role
        listed = claims.get("roles")
        if not rs256 or listed is None:
            raise _refused("token lacks the 'role' claim", "claims")
        if not isinstance(listed, list):
            raise _refused("token claim 'roles' must be a list", "role")
        for role in _ROLES_PREFERENCE:
            if role in listed:
                return role
        raise _refused(f"token roles name no suite role (one of {', '.join(ROLE_NAMES)})", "role")


WORKER_CLAIM = "wid"
_MAX_WORKER_BINDING = 256


def check_worker_binding(pattern: str) -> None:
    """Raise ValueError unless `pattern` is a usable worker id or glob pattern (`*`, `?`, `[...]`)."""
    if not pattern or len(pattern) > _MAX_WORKER_BINDING or not pattern.isprintable():
        raise ValueError(f"worker binding must be 1-{_MAX_WORKER_BINDING} printable characters")


def _actor(claims: dict[str, Any]) -> str | None:
    act = claims.get("act")
    if act is None:
        return None
    if not isinstance(act, dict) or not isinstance(act.get("sub"), str) or not act["sub"]:
        raise _refused("token claim 'act' must be an object with a 'sub' string", "claims")
    return str(act["sub"])


def _worker_binding(claims: dict[str, Any]) -> str | None:
    bound = claims.get(WORKER_CLAIM)
    if bound is None:
        return None
    if not isinstance(bound, str):
        raise _refused(f"token claim {WORKER_CLAIM!r} must be a string", "claims")
    try:
        check_worker_binding(bound)
    except ValueError as exc:
        raise _refused(f"token claim {WORKER_CLAIM!r}: {exc}", "claims") from None
    return bound


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{env_name(field)}: cannot read {path}: {exc.strerror or exc}") from None


def _checked_rsa(key: object, where: str, field: str) -> RSAPublicKey:
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"{env_name(field)}: {where} is not an RSA public key (only RS256 is accepted)")
    if key.key_size < _MIN_RSA_BITS:
        raise ConfigError(f"{env_name(field)}: {where} has {key.key_size} bits; at least 2048 are needed")
    return key


def load_public_key_file(path: Path) -> VerificationKey:
    """An RSA public key (or an X.509 certificate holding one) from a PEM file, as a kid-less key."""
    data = _read(path, "jwt_public_key_file")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(
            f"{env_name('jwt_public_key_file')}: {path} is not a PEM public key: {exc}"
        ) from None
    return VerificationKey(kid=None, key=_checked_rsa(key, str(path), "jwt_public_key_file"))


def load_jwks_file(path: Path) -> list[VerificationKey]:
    """The RS256 signing keys of a JWKS file; keys for encryption or other algorithms are skipped."""
    return parse_jwks(_read(path, "jwks_file"), str(path))


def parse_jwks(data: bytes, path: str, field: str = "jwks_file") -> list[VerificationKey]:
    """The RS256 signing keys of a JWKS document read from `path` (a file or URL); ConfigError naming
    `field` when it holds none."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise ConfigError(f"{env_name(field)}: {path} is not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{env_name(field)}: {path} must be a JSON object with a 'keys' list")
    keys: list[VerificationKey] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", RS_ALGORITHM) != RS_ALGORITHM:
            continue
        try:
            jwk = jwt.PyJWK(entry, algorithm=RS_ALGORITHM)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError) as exc:
            raise ConfigError(f"{env_name(field)}: key {index} of {path} is unusable: {exc}") from None
        kid = entry.get("kid")
        keys.append(
            VerificationKey(
                kid=str(kid) if kid is not None else None,
                key=_checked_rsa(jwk.key, f"key {index} of {path}", field),
            )
        )
    if not keys:
        raise ConfigError(f"{env_name(field)}: {path} holds no RSA signing key usable with RS256")
    return keys


def authority_from_settings(settings: Settings, revocations: RevocationList | None = None) -> TokenAuthority:
    """The suite's authority: HS256 with the configured (or kept) secret, plus any configured RS256 keys
    (a PEM file, a JWKS file, a JWKS URL), checking `revocations` when given."""
    configured = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    secret = load_or_create_secret(configured, settings.data_dir)
    keys: list[VerificationKey] = []
    if settings.jwt_public_key_file is not None:
        keys.append(load_public_key_file(settings.jwt_public_key_file))
    if settings.jwks_file is not None:
        keys.extend(load_jwks_file(settings.jwks_file))
    jwks = None
    if settings.jwks_url is not None:
        jwks = JwksSource(
            settings.jwks_url,
            functools.partial(parse_jwks, field="jwks_url"),
            ttl_seconds=settings.jwks_ttl_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            timeout_seconds=settings.jwks_fetch_timeout_seconds,
        )
        # At start, before serving; a provider that does not answer yet is retried on the first token.
        jwks.load()
    try:
        return TokenAuthority(
            secret, issuer=settings.jwt_issuer, rsa_keys=keys, revocations=revocations, jwks=jwks
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


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
    if required == access_pb2.ROLE_SERVICE:
        if principal.actor is None:
            raise PermissionDenied(
                f"{method.rsplit('/', 1)[-1]} is called only by the suite's own services; go through "
                "MonitorService, which checks the role, asks for confirmation and audits the action",
                reason="SERVICE_ONLY",
                metadata={"role": principal.role},
            )
        return
    if not role_allows(principal.role, required):
        needed = role_name(required)
        raise PermissionDenied(
            f"role {principal.role!r} may not call {method.rsplit('/', 1)[-1]} (needs {needed})",
            reason="ROLE_NOT_ALLOWED",
            metadata={"required_role": needed, "role": principal.role},
        )
