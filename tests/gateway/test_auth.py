"""Tokens at the gateway (HS256, RS256 from PEM or JWKS, and every refusal), CORS and security headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.support.suites import Config
from workermon_core.auth import TokenAuthority, authority_from_settings, bearer_token
from workermon_core.errors import Unauthenticated
from workermon_core.settings import ConfigError, Settings
from workermon_gateway.login import auth_error, login_routes
from workermon_gateway.security import CONTENT_SECURITY_POLICY, security_middleware
from workermon_gateway.users import UserStore, users_path

SECRET = "gateway-secret-" + "g" * 40
PROTECTED = "/api/v1/protected"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": "idp-user",
        "role": "viewer",
        "iss": "workermon",
        "iat": now,
        "exp": now + 60,
    }
    body.update(changes)
    return body


async def _protected(request: Request) -> Response:
    authority: TokenAuthority = request.app.state.authority
    header = request.headers.get("authorization")
    try:
        principal = authority.verify(bearer_token((("authorization", header),) if header else None))
    except Unauthenticated as exc:
        return auth_error(exc)
    return JSONResponse({"subject": principal.subject, "role": principal.role})


def _app(settings: Config, authority: TokenAuthority) -> Starlette:
    users = UserStore(users_path(settings.gateway, settings.data_dir))

    async def page(request: Request) -> Response:
        return PlainTextResponse("<html>admin</html>", media_type="text/html")

    app = Starlette(
        routes=[
            *login_routes(settings.gateway, users, authority),
            Route(PROTECTED, _protected),
            Route("/", page),
        ],
        middleware=security_middleware(settings.gateway),
    )
    app.state.authority = authority
    return app


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")


class Idp:
    """An identity provider's keys: one published as a PEM file, two in a JWKS file."""

    def __init__(self, tmp_path: Path) -> None:
        self.pem_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_keys = {
            kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("a", "b")
        }
        self.pem_file = tmp_path / "idp.pem"
        self.pem_file.write_bytes(
            self.pem_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.jwks_file = tmp_path / "jwks.json"
        entries = []
        for kid, key in self.jwks_keys.items():
            entry = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            entries.append({**entry, "kid": kid, "use": "sig", "alg": "RS256"})
        self.jwks_file.write_text(json.dumps({"keys": entries}))


@pytest.fixture
def idp(tmp_path: Path) -> Idp:
    return Idp(tmp_path)


@pytest.fixture
def settings(tmp_path: Path, idp: Idp) -> Config:
    return Config(
        data_dir=tmp_path / "data",
        jwt_secret=SECRET,
        jwt_public_key_file=idp.pem_file,
        jwks_file=idp.jwks_file,
        cors_origins="https://ops.example.com, http://localhost:5173",
    )


@pytest.fixture
def app(settings: Settings) -> Starlette:
    return _app(settings, authority_from_settings(settings.core))


def _token_matrix(idp: Idp) -> dict[str, tuple[str, int, str | None]]:
    """name -> (token, expected status, expected `check` on refusal)."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{none_header}.{_b64(json.dumps(_claims()).encode())}."
    confused_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}."
        f"{_b64(json.dumps(_claims(role='admin')).encode())}"
    )
    confused_sig = hmac.new(idp.pem_file.read_bytes(), confused_input.encode(), hashlib.sha256).digest()
    return {
        "hs256": (jwt.encode(_claims(), SECRET, algorithm="HS256"), 200, None),
        "rs256-pem": (jwt.encode(_claims(), idp.pem_key, algorithm="RS256"), 200, None),
        "rs256-jwks-a": (
            jwt.encode(_claims(), idp.jwks_keys["a"], algorithm="RS256", headers={"kid": "a"}),
            200,
            None,
        ),
        "rs256-jwks-b": (
            jwt.encode(_claims(), idp.jwks_keys["b"], algorithm="RS256", headers={"kid": "b"}),
            200,
            None,
        ),
        "expired": (
            jwt.encode(_claims(iat=now - 100, exp=now - 10), SECRET, algorithm="HS256"),
            401,
            "expiry",
        ),
        "wrong-hs-key": (jwt.encode(_claims(), "x" * 48, algorithm="HS256"), 401, "signature"),
        "wrong-rsa-key": (jwt.encode(_claims(), stranger, algorithm="RS256"), 401, "signature"),
        "wrong-kid-key": (
            jwt.encode(_claims(), idp.jwks_keys["a"], algorithm="RS256", headers={"kid": "b"}),
            401,
            "signature",
        ),
        "alg-none": (unsigned, 401, "algorithm"),
        "hs256-with-public-key": (f"{confused_input}.{_b64(confused_sig)}", 401, "algorithm"),
        "wrong-issuer": (jwt.encode(_claims(iss="elsewhere"), SECRET, algorithm="HS256"), 401, "issuer"),
        "garbage": ("not-a-token", 401, "format"),
    }


async def test_token_matrix(app: Starlette, idp: Idp) -> None:
    async with _client(app) as client:
        missing = await client.get(PROTECTED)
        assert missing.status_code == 401
        assert missing.json()["error"]["details"][0]["reason"] == "TOKEN_MISSING"
        for name, (token, status, check) in _token_matrix(idp).items():
            response = await client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status, (name, response.text)
            if status == 200:
                assert response.json() == {"subject": "idp-user", "role": "viewer"}, name
            else:
                detail = response.json()["error"]["details"][0]
                assert detail["domain"] == "gateway.workermon", (name, detail)
                assert detail["metadata"]["check"] == check, (name, detail)
            me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == status, name


async def test_unknown_kid_with_jwks_only(tmp_path: Path, idp: Idp) -> None:
    settings = Config(data_dir=tmp_path / "d", jwt_secret=SECRET, jwks_file=idp.jwks_file)
    app = _app(settings, authority_from_settings(settings.core))
    token = jwt.encode(_claims(), idp.jwks_keys["a"], algorithm="RS256", headers={"kid": "zzz"})
    async with _client(app) as client:
        response = await client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert "unknown key id 'zzz'" in error["message"] and error["details"][0]["metadata"]["check"] == "key"


async def test_idp_roles_list(app: Starlette, idp: Idp) -> None:
    token = jwt.encode(
        {k: v for k, v in _claims(roles=["viewer", "operator"]).items() if k != "role"},
        idp.pem_key,
        algorithm="RS256",
    )
    async with _client(app) as client:
        response = await client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})
    assert response.json()["role"] == "operator"


def test_bad_key_file_is_a_config_error(tmp_path: Path) -> None:
    settings = Config(data_dir=tmp_path, jwks_file=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="WORKERMON_JWKS_FILE"):
        authority_from_settings(settings.core)


# --- CORS and security headers --------------------------------------------------------------------


async def test_cors_allows_listed_origins_only(app: Starlette) -> None:
    async with _client(app) as client:
        preflight = await client.options(
            "/api/v1/auth/login",
            headers={
                "Origin": "https://ops.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://ops.example.com"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert preflight.headers["x-content-type-options"] == "nosniff"

        simple = await client.get("/api/v1/auth/me", headers={"Origin": "http://localhost:5173"})
        assert simple.headers["access-control-allow-origin"] == "http://localhost:5173"

        refused = await client.options(
            "/api/v1/auth/login",
            headers={"Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"},
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        other = await client.get("/api/v1/auth/me", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in other.headers


async def test_no_cors_headers_without_origins(tmp_path: Path) -> None:
    settings = Config(data_dir=tmp_path, jwt_secret=SECRET)
    app = _app(settings, TokenAuthority(SECRET))
    async with _client(app) as client:
        response = await client.get("/api/v1/auth/me", headers={"Origin": "https://ops.example.com"})
        assert not [h for h in response.headers if h.startswith("access-control-")]
        preflight = await client.options(
            "/api/v1/auth/login",
            headers={"Origin": "https://ops.example.com", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_malformed_cors_origin_is_a_config_error(tmp_path: Path) -> None:
    settings = Config(data_dir=tmp_path, cors_origins="https://ok.example.com, ftp://nope")
    with pytest.raises(ConfigError, match="WORKERMON_CORS_ORIGINS"):
        security_middleware(settings.gateway)


async def test_security_headers_on_every_response(app: Starlette) -> None:
    async with _client(app) as client:
        for response in (
            await client.get("/"),
            await client.get(PROTECTED),
            await client.post("/api/v1/auth/login", json={"username": "x", "password": "y"}),
            await client.get("/api/v1/nothing-here"),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        csp = CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in csp and "img-src 'self' data:" in csp
        page = await client.get("/")
        assert "cache-control" not in page.headers  # the SPA's own files may be cached
        api = await client.get(PROTECTED)
        assert api.headers["cache-control"] == "no-store"
        missing = await client.get("/api/v1/nothing-here")
        assert missing.status_code == 404 and missing.headers["cache-control"] == "no-store"


async def test_no_store_without_a_base_path(tmp_path: Path) -> None:
    settings = Config(data_dir=tmp_path, base_path="")

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[Route("/v1/thing", ok), Route("/index.html", ok)],
        middleware=security_middleware(settings.gateway),
    )
    async with _client(app) as client:
        assert (await client.get("/v1/thing")).headers["cache-control"] == "no-store"
        assert "cache-control" not in (await client.get("/index.html")).headers
