"""RS256 keys fetched from a JWKS URL served by a real local HTTP server whose keys rotate."""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from workermon_core.auth import TokenAuthority, authority_from_settings, parse_jwks
from workermon_core.errors import Unauthenticated
from workermon_core.jwks import JwksSource, max_age
from workermon_core.settings import ConfigError, load_settings

SECRET = "suite-secret-" + "j" * 40
ISSUER = "workermon"


def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _token(key: rsa.RSAPrivateKey, kid: str, subject: str = "idp-user") -> str:
    now = int(time.time())
    claims = {"sub": subject, "role": "viewer", "iss": ISSUER, "iat": now, "exp": now + 60}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


class KeyServer:
    """A JWKS endpoint on loopback: the keys it publishes, its Cache-Control, and how often it was asked."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.cache_control: str | None = None
        self.failing = False
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                if server.failing:
                    self.send_error(503, "key service down")
                    return
                body = json.dumps({"keys": [server.jwk(kid) for kid in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if server.cache_control:
                    self.send_header("Cache-Control", server.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/.well-known/jwks.json"

    def jwk(self, kid: str) -> dict[str, Any]:
        entry: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        entry.update(kid=kid, use="sig", alg="RS256")
        return entry

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def server() -> Iterator[KeyServer]:
    running = KeyServer()
    yield running
    running.close()


def _authority(tmp_path: Path, url: str, **values: Any) -> TokenAuthority:
    settings = load_settings(data_dir=tmp_path, jwt_secret=SECRET, jwt_issuer=ISSUER, jwks_url=url, **values)
    return authority_from_settings(settings)


def _accepted(authority: TokenAuthority, token: str, limit: float = 10.0) -> str:
    """Poll until the authority accepts `token` (a refetch, once allowed, runs in the background)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            return authority.verify(token).subject
        except Unauthenticated:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _with_clock(url: str, clock: Clock, **options: Any) -> tuple[TokenAuthority, JwksSource]:
    source = JwksSource(url, functools.partial(parse_jwks, field="jwks_url"), clock=clock, **options)
    assert source.load()
    return TokenAuthority(SECRET, issuer=ISSUER, jwks=source), source


def test_keys_are_fetched_at_start_and_rotation_is_picked_up(tmp_path: Path, server: KeyServer) -> None:
    old, new = _rsa(), _rsa()
    server.keys = {"k-old": old}
    clock = Clock()
    authority, source = _with_clock(server.url, clock, min_refetch_seconds=30)
    assert server.requests == 1
    assert authority.verify(_token(old, "k-old")).subject == "idp-user"

    # The provider rotates: publishes the new key and drops the old one.
    server.keys = {"k-new": new}
    fresh = _token(new, "k-new", subject="after-rotation")
    # Within the refetch limit of the last fetch, an unknown key id starts nothing.
    with pytest.raises(Unauthenticated) as early:
        authority.verify(fresh)
    assert "unknown key id" in early.value.message and server.requests == 1
    clock.now += 31
    with pytest.raises(Unauthenticated) as refused:
        authority.verify(fresh)
    assert "being fetched again" in refused.value.message
    source.wait(5)
    assert server.requests == 2
    assert authority.verify(fresh).subject == "after-rotation"
    # The old key went with the refetch: a token it signs no longer verifies.
    with pytest.raises(Unauthenticated) as gone:
        authority.verify(_token(old, "k-old", subject="someone-else"))
    assert gone.value.metadata["check"] == "key"


def _spray(
    authority: TokenAuthority, source: JwksSource, key: rsa.RSAPrivateKey, kid: str, count: int
) -> int:
    """Present `count` tokens naming unknown key ids; how many fetches the source has made after."""
    for i in range(count):
        with pytest.raises(Unauthenticated):
            authority.verify(_token(key, f"{kid}-{i}"))
    source.wait(5)
    return source.fetches


def test_unknown_kids_refetch_at_most_once_per_period(server: KeyServer) -> None:
    key = _rsa()
    server.keys = {"k1": key}
    clock = Clock()
    authority, source = _with_clock(server.url, clock, min_refetch_seconds=30)
    clock.now += 31
    # An attacker sprays random key ids: one refetch, then none for the rest of the period.
    assert _spray(authority, source, key, "random", 200) == 2
    clock.now += 29
    assert _spray(authority, source, key, "later", 50) == 2
    clock.now += 2
    assert _spray(authority, source, key, "next-period", 1) == 3
    assert server.requests == 3
    # The known key keeps working throughout.
    assert authority.verify(_token(key, "k1", subject="still-fine")).subject == "still-fine"


def test_a_failed_fetch_keeps_the_last_good_keys(server: KeyServer) -> None:
    key = _rsa()
    server.keys = {"k1": key}
    clock = Clock()
    authority, source = _with_clock(server.url, clock, min_refetch_seconds=5)
    server.failing = True
    clock.now += 6
    with pytest.raises(Unauthenticated):
        authority.verify(_token(_rsa(), "k-unknown"))
    source.wait(5)
    assert server.requests == 2
    assert authority.verify(_token(key, "k1", subject="kept")).subject == "kept"


def test_max_age_sets_when_the_keys_are_fetched_again(tmp_path: Path, server: KeyServer) -> None:
    first, second = _rsa(), _rsa()
    server.keys = {"k1": first}
    server.cache_control = "public, max-age=1"
    authority = _authority(tmp_path, server.url, jwks_ttl_seconds=3600, jwks_min_refetch_seconds=1)
    assert authority.jwks is not None
    # The provider adds a key while the set is fresh: it is picked up once max-age (1 s) has passed,
    # without any token having named it first (the TTL alone would have waited an hour).
    server.keys = {"k1": first, "k2": second}
    deadline = time.monotonic() + 10
    while server.requests < 2:
        authority.verify(_token(first, "k1"))
        assert time.monotonic() < deadline, "the key set was not fetched again after its max-age"
        time.sleep(0.05)
    authority.jwks.wait(5)
    assert authority.verify(_token(second, "k2", subject="new-key")).subject == "new-key"


def test_a_provider_down_at_start_does_not_stop_the_process(tmp_path: Path, server: KeyServer) -> None:
    key = _rsa()
    server.failing = True
    authority = _authority(tmp_path, server.url, jwks_min_refetch_seconds=1)
    with pytest.raises(Unauthenticated):
        authority.verify(_token(key, "k1"))
    server.failing = False
    server.keys = {"k1": key}
    assert _accepted(authority, _token(key, "k1", subject="late")) == "late"


def test_jwks_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WORKERMON_JWKS_URL"):
        load_settings(data_dir=tmp_path, jwks_url="file:///etc/passwd")


def test_max_age_parsing() -> None:
    assert max_age("public, max-age=600, must-revalidate") == 600
    assert max_age("no-cache") is None
    assert max_age(None) is None
