"""Logging in for a token, the attempt limit, the users file and the `workermon user` command."""

from __future__ import annotations

import io
import json
import os
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from tests.support.bull import delete_suite_keys
from tests.support.fakes import FakeClock
from tests.support.suites import Config
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_cli.main import main
from workermon_cli.runtime import migrate
from workermon_cli.user_cmd import ensure_first_admin
from workermon_core.auth import TokenAuthority
from workermon_core.peer import Peer
from workermon_core.redis_store import connect
from workermon_core.settings import load_settings
from workermon_gateway.auth_audit import AuthAudit
from workermon_gateway.login import AttemptLimiter, login_routes
from workermon_gateway.security import security_middleware
from workermon_gateway.users import (
    ReservedName,
    UnknownUser,
    UserError,
    UserExists,
    UserStore,
    WeakPassword,
    users_path,
)

SECRET = "login-secret-" + "l" * 40
PASSWORD = "correct horse battery staple"
LOGIN = "/api/v1/auth/login"


def _settings(tmp_path: Path, **overrides: Any) -> Config:
    return Config(data_dir=tmp_path / "data", **overrides)


class Gateway:
    """A Starlette app made of the login routes and the security middleware, and a client of it."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.settings = _settings(tmp_path, **overrides)
        self.users = UserStore(users_path(self.settings.gateway, self.settings.data_dir))
        self.authority = TokenAuthority(SECRET)
        self.app = Starlette(
            routes=login_routes(self.settings.gateway, self.users, self.authority),
            middleware=security_middleware(self.settings),
        )

    def client(self, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://gateway.test")


@pytest.fixture
def gateway(tmp_path: Path) -> Gateway:
    gw = Gateway(tmp_path, login_attempts_per_minute=5, token_ttl_seconds=600)
    gw.users.add("alice", "operator", PASSWORD)
    return gw


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client() as c:
        yield c


def _error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert body["code"] == response.status_code
    return body


async def test_login_gives_a_token_the_authority_accepts(gateway: Gateway, client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tokenType"] == "Bearer" and body["expiresIn"] == 600
    assert (body["role"], body["username"]) == ("operator", "alice")
    principal = gateway.authority.verify(body["accessToken"])
    assert (principal.subject, principal.role) == ("alice", "operator")
    assert 590 < principal.expires_at - time.time() <= 600
    assert response.headers["cache-control"] == "no-store"

    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.status_code == 200
    assert me.json()["subject"] == "alice" and me.json()["role"] == "operator"


async def test_wrong_password_and_unknown_user_get_the_same_answer(client: httpx.AsyncClient) -> None:
    wrong = await client.post(LOGIN, json={"username": "alice", "password": "not the password"})
    unknown = await client.post(LOGIN, json={"username": "mallory", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": {
                "code": 401,
                "status": "UNAUTHENTICATED",
                "message": "invalid username or password",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "BAD_CREDENTIALS",
                        "domain": "gateway.workermon",
                    }
                ],
            }
        }
    )
    assert wrong.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("{not json", "body"),
        ("[1, 2]", "body"),
        (json.dumps({"password": PASSWORD}), "username"),
        (json.dumps({"username": "", "password": PASSWORD}), "username"),
        (json.dumps({"username": "alice"}), "password"),
        (json.dumps({"username": "alice", "password": 12345678901234}), "password"),
        (json.dumps({"username": "alice", "password": "x" * 2000}), "password"),
    ],
)
async def test_malformed_body_names_the_field(client: httpx.AsyncClient, body: str, field: str) -> None:
    response = await client.post(LOGIN, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    error = _error(response)
    assert error["status"] == "INVALID_ARGUMENT" and error["message"].startswith(f"{field}:")
    violations = [d for d in error["details"] if d["@type"].endswith("BadRequest")]
    assert violations[0]["fieldViolations"][0]["field"] == field


async def test_login_needs_a_json_content_type(client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert "Content-Type: application/json" in _error(response)["message"]


async def test_attempts_are_limited_per_client(gateway: Gateway, client: httpx.AsyncClient) -> None:
    for _ in range(5):
        response = await client.post(LOGIN, json={"username": "alice", "password": "wrong password!"})
        assert response.status_code == 401
    limited = await client.post(LOGIN, json={"username": "alice", "password": PASSWORD})
    assert limited.status_code == 429
    error = _error(limited)
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert error["details"][0]["reason"] == "LOGIN_RATE_LIMITED"
    # Another address has its own allowance.
    async with gateway.client("10.0.0.9") as other:
        ok = await other.post(LOGIN, json={"username": "alice", "password": PASSWORD})
        assert ok.status_code == 200


def test_limiter_window_slides_and_idle_clients_are_forgotten() -> None:
    clock = FakeClock()
    limiter = AttemptLimiter(2, 60.0, max_clients=3, clock=clock)
    assert limiter.hit("a") is None
    clock.advance(10)
    assert limiter.hit("a") is None
    assert limiter.hit("a") == pytest.approx(50.0)
    clock.advance(50)
    assert limiter.hit("a") is None  # the first attempt left the window
    assert limiter.hit("a") == pytest.approx(10.0)
    for name in ("b", "c", "d", "e"):
        assert limiter.hit(name) is None
    assert len(limiter) == 3  # the least recently seen were dropped
    clock.advance(61)
    assert limiter.hit("f") is None
    assert len(limiter) == 1  # everyone idle for a window is forgotten


async def test_me_without_or_with_a_bad_token(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/auth/me")
    assert missing.status_code == 401
    assert _error(missing)["details"][0]["reason"] == "TOKEN_MISSING"
    bad = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and _error(bad)["status"] == "UNAUTHENTICATED"
    basic = await client.get("/api/v1/auth/me", headers={"Authorization": "Basic YWxpY2U6eA=="})
    assert basic.status_code == 401


async def test_routes_follow_the_base_path(tmp_path: Path) -> None:
    gw = Gateway(tmp_path, base_path="/ops/monitor")
    gw.users.add("root", "admin", PASSWORD)
    async with gw.client() as c:
        response = await c.post("/ops/monitor/v1/auth/login", json={"username": "root", "password": PASSWORD})
        assert response.status_code == 200 and response.json()["role"] == "admin"
        assert (await c.post(LOGIN, json={"username": "root", "password": PASSWORD})).status_code == 404


# --- the users file -------------------------------------------------------------------------------


def test_store_file_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "users.json"
    store = UserStore(path)
    store.add("bob", "viewer", PASSWORD)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    on_disk = json.loads(path.read_text())
    assert set(on_disk["bob"]) == {"role", "password_hash", "created_at"}
    assert on_disk["bob"]["password_hash"].startswith("$argon2")
    assert PASSWORD not in path.read_text()
    # Only the file and its lock remain: no temporary file is left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["users.json", "users.json.lock"]


def test_store_rules(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("a.b_c-d@example.com", "admin", PASSWORD)
    for name in ("", "x" * 65, "has space", "slash/", "ünicode"):
        with pytest.raises(UserError, match="user name"):
            store.add(name, "viewer", PASSWORD)
    with pytest.raises(UserError, match="role"):
        store.add("carol", "worker", PASSWORD)
    with pytest.raises(UserError, match="at least 12"):
        store.add("carol", "viewer", "short")
    with pytest.raises(UserExists):
        store.add("a.b_c-d@example.com", "viewer", PASSWORD)
    created = store.list()[0].created_at
    store.add("a.b_c-d@example.com", "viewer", "another password!", replace=True)
    assert [(u.name, u.role, u.created_at) for u in store.list()] == [
        ("a.b_c-d@example.com", "viewer", created)
    ]
    assert store.verify("a.b_c-d@example.com", PASSWORD) is None
    assert store.verify("a.b_c-d@example.com", "another password!") == "viewer"
    store.remove("a.b_c-d@example.com")
    assert store.list() == []
    with pytest.raises(UnknownUser):
        store.remove("a.b_c-d@example.com")


def test_store_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    serving, admin_tool = UserStore(path), UserStore(path)
    assert serving.verify("dave", PASSWORD) is None
    admin_tool.add("dave", "operator", PASSWORD)
    assert serving.verify("dave", PASSWORD) == "operator"
    admin_tool.remove("dave")
    assert serving.verify("dave", PASSWORD) is None
    # A damaged file keeps the last good users rather than locking everyone out.
    admin_tool.add("erin", "viewer", PASSWORD)
    assert serving.verify("erin", PASSWORD) == "viewer"
    path.write_text("{half a file")
    assert serving.verify("erin", PASSWORD) == "viewer"


# --- the `workermon user` command -----------------------------------------------------------------


@pytest.fixture
async def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> AsyncIterator[Path]:
    """`workermon` reading only this test's settings: its data directory (users file, SQLite audit log,
    migrated), the test Redis under a prefix of its own (revocations; deleted afterwards)."""
    for name in list(os.environ):
        if name.startswith("WORKERMON_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    prefix = "wmcli-" + uuid.uuid4().hex[:10]
    monkeypatch.setenv("WORKERMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("WORKERMON_REDIS_PREFIX", prefix)
    await migrate(load_settings())
    yield tmp_path / "data" / "users.json"
    client = connect(redis_url)
    try:
        await delete_suite_keys(client, prefix)
    finally:
        await client.aclose()


def test_user_cli_add_list_remove(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "frank", "--role", "operator", "--password-stdin"]) == 0
    assert UserStore(cli_env).verify("frank", PASSWORD) == "operator"

    prompts = iter([PASSWORD + "2", PASSWORD + "2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(prompts))
    assert main(["user", "add", "grace", "--role", "admin"]) == 0
    assert UserStore(cli_env).verify("grace", PASSWORD + "2") == "admin"

    capsys.readouterr()
    assert main(["user", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["frank", "operator"], ["grace", "admin"]]

    assert main(["user", "remove", "frank"]) == 0
    assert [u.name for u in UserStore(cli_env).list()] == ["grace"]
    assert main(["user", "remove", "frank"]) == 1
    assert "no user named 'frank'" in capsys.readouterr().err


def test_user_cli_refusals(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "henry", "--role", "viewer", "--password-stdin"]) == 1
    assert "at least 12" in capsys.readouterr().err
    answers = iter([PASSWORD, PASSWORD + "typo"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["user", "add", "henry", "--role", "viewer"]) == 1
    assert "do not match" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "henry", "--role", "viewer", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "henry", "--role", "admin", "--password-stdin"]) == 1
    assert "exists already" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "henry", "--role", "admin", "--password-stdin", "--replace"]) == 0
    assert UserStore(cli_env).verify("henry", PASSWORD) == "admin"
    with pytest.raises(SystemExit):
        main(["user", "add", "ivy", "--role", "worker", "--password-stdin"])


def test_ensure_first_admin(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = ensure_first_admin(settings.core, settings.gateway)
    assert first is not None and first.password is not None
    password = first.password
    assert len(password) >= 12
    store = UserStore(users_path(settings.gateway, settings.data_dir))
    assert [(u.name, u.role) for u in store.list()] == [("admin", "admin")]
    assert store.verify("admin", password) == "admin"
    assert ensure_first_admin(settings.core, settings.gateway) is None
    assert store.verify("admin", password) == "admin"


def test_ensure_first_admin_leaves_existing_users_alone(tmp_path: Path) -> None:
    custom = tmp_path / "elsewhere" / "people.json"
    settings = _settings(tmp_path, users_file=custom)
    UserStore(custom).add("ops", "operator", PASSWORD)
    assert ensure_first_admin(settings.core, settings.gateway) is None
    assert [u.name for u in UserStore(custom).list()] == ["ops"]


# --- password policy, reserved names, an audit log that cannot be written --------------------------


def test_passwords_easy_to_guess_are_refused_saying_why(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    with pytest.raises(WeakPassword) as common:
        store.add("kim", "viewer", "password1234")
    assert common.value.field == "password"
    assert "too easy to guess" in str(common.value) and "very common password" in str(common.value)
    with pytest.raises(WeakPassword) as repeated:
        store.add("kim", "viewer", "aaaaaaaaaaaaaaaa")
    assert "Repeats" in str(repeated.value)
    # The user's own name, and this product's, are the first guesses.
    with pytest.raises(WeakPassword):
        store.add("kimberly.jones", "viewer", "kimberly.jones1")
    with pytest.raises(WeakPassword) as short:
        store.add("kim", "viewer", "x7Qp-L2m")
    assert str(short.value) == "password must be at least 12 characters"
    store.add("kim", "viewer", PASSWORD)
    assert store.verify("kim", PASSWORD) == "viewer"


def test_the_name_system_is_reserved(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    for name in ("system", "SYSTEM"):
        with pytest.raises(ReservedName, match="reserved"):
            store.add(name, "admin", PASSWORD)
    assert len(store) == 0


def test_the_cli_changes_nothing_it_cannot_audit(
    cli_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No suite answers and this process has no database of the suite (a fresh data directory).
    monkeypatch.setenv("WORKERMON_DATA_DIR", str(tmp_path / "fresh"))
    monkeypatch.setenv("WORKERMON_USERS_FILE", str(cli_env))
    monkeypatch.setenv("WORKERMON_MONITOR_TARGET", "127.0.0.1:1")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "nina", "--role", "viewer", "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert "audit log cannot be written" in err and "nothing was changed" in err
    assert UserStore(cli_env).role_of("nina") is None
    assert not (tmp_path / "fresh" / "workermon.db").exists()


def test_the_cli_mints_no_token_for_system(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "--role", "admin", "--sub", "system"]) == 2
    assert "--sub" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("password1234\n"))
    assert main(["user", "add", "lee", "--role", "viewer", "--password-stdin"]) == 1
    err = capsys.readouterr().err
    assert "password is too easy to guess: This is a very common password." in err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "system", "--role", "admin", "--password-stdin"]) == 1
    assert "reserved" in capsys.readouterr().err


def test_a_supplied_first_admin_password_meets_the_policy(tmp_path: Path) -> None:
    weak = _settings(tmp_path, first_admin_password="admin12345678")
    with pytest.raises(WeakPassword) as refused:
        ensure_first_admin(weak.core, weak.gateway)
    assert refused.value.field == "WORKERMON_FIRST_ADMIN_PASSWORD"
    good = _settings(tmp_path, first_admin_password=PASSWORD)
    first = ensure_first_admin(good.core, good.gateway)
    assert first is not None and first.password is None
    assert UserStore(users_path(good.gateway, good.data_dir)).verify("admin", PASSWORD) == "admin"


async def test_while_the_audit_log_is_down_logins_are_refused_and_failures_still_refused(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    users = UserStore(users_path(settings.gateway, settings.data_dir))
    users.add("mona", "viewer", PASSWORD)
    authority = TokenAuthority(SECRET)
    # A monitor that does not answer: nothing listens on port 1.
    monitor = Peer("127.0.0.1:1", mon_grpc.MonitorServiceStub, lambda: authority.mint("gateway", "admin"))
    app = Starlette(routes=login_routes(settings.gateway, users, authority, audit=AuthAudit(monitor)))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            wrong = await client.post(LOGIN, json={"username": "mona", "password": "not the right one!"})
            assert wrong.status_code == 401
            right = await client.post(LOGIN, json={"username": "mona", "password": PASSWORD})
            assert right.status_code == 503
            assert _error(right)["details"][0]["reason"] == "AUDIT_UNAVAILABLE"
            assert "accessToken" not in right.text and "set-cookie" not in right.headers
    finally:
        await monitor.close()
