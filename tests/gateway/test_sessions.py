"""Sessions on the suite as `workermon up` serves it: refresh cookies, log out everywhere, removed users,
and the audit entries of logins, all checked against real gRPC services and the real audit log."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.support.bull import until
from tests.support.fakes import TEST_SECRET
from tests.support.gateway import Gateway, start_gateway_suite, stop_gateway_suite
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_cli.main import main
from workermon_cli.user_cmd import cli_actor
from workermon_core.client import open_channel
from workermon_gateway.login import REFRESH_COOKIE
from workermon_gateway.users import UserStore, users_path

PASSWORD = "correct horse battery staple"
AUTH = "/api/v1/auth"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Gateway]:
    """The suite with revocations read every 0.2 s, so a test waits well under a second for them."""
    running = await start_gateway_suite(
        tmp_path_factory.mktemp("sessions"), redis_url, revocation_refresh_seconds=0.2
    )
    yield running
    await stop_gateway_suite(running)


def _users(gateway: Gateway) -> UserStore:
    return UserStore(users_path(gateway.settings.gateway, gateway.settings.data_dir))


async def _login(gateway: Gateway, name: str) -> tuple[httpx.AsyncClient, str]:
    """A browser-like client (keeps cookies) logged in as `name`, and its access token."""
    client = httpx.AsyncClient(base_url=gateway.url, timeout=30.0)
    gateway.clients.append(client)
    reply = await client.post(f"{AUTH}/login", json={"username": name, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return client, reply.json()["accessToken"]


async def _grpc_refuses(gateway: Gateway, token: str) -> bool:
    """Whether a real gRPC service (HeartbeatService.ListWorkers) refuses the token as revoked."""
    channel = open_channel(gateway.suite.grpc_target, token)
    try:
        await hb_grpc.HeartbeatServiceStub(channel).ListWorkers(hb_pb.ListWorkersRequest(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc
        assert "revoked" in (exc.details() or "")
        return True
    finally:
        await channel.close()
    return False


async def _audit(gateway: Gateway, action: str, user: str) -> list[dict[str, object]]:
    reply = await gateway.client("admin").get(
        "/api/v1/auditLogs", params={"action": f"AUDIT_ACTION_{action}", "entityId": user}
    )
    assert reply.status_code == 200, reply.text
    entries: list[dict[str, object]] = reply.json().get("auditLogs", [])
    return entries


async def test_refresh_renews_the_token_and_reads_the_role_again(gateway: Gateway) -> None:
    _users(gateway).add("rita", "operator", PASSWORD, replace=True)
    browser, _ = await _login(gateway, "rita")
    cookie = browser.cookies.get(REFRESH_COOKIE)
    assert cookie
    again = await gateway.client(None).post(f"{AUTH}/login", json={"username": "rita", "password": PASSWORD})
    login_cookie_header = again.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=strict", "path=/api/v1/auth"):
        assert attribute in login_cookie_header
    _users(gateway).add("rita", "viewer", PASSWORD, replace=True)
    renewed = await browser.post(f"{AUTH}/refresh")
    assert renewed.status_code == 200, renewed.text
    body = renewed.json()
    assert body["role"] == "viewer" and body["username"] == "rita"
    me = await browser.get(f"{AUTH}/me", headers={"authorization": f"Bearer {body['accessToken']}"})
    assert me.json()["subject"] == "rita" and me.json()["role"] == "viewer"
    # A refresh token is not an access token.
    as_bearer = await browser.get(f"{AUTH}/me", headers={"authorization": f"Bearer {cookie}"})
    assert as_bearer.status_code == 401
    # Logging out forgets this browser's cookie: nothing left to refresh with.
    out = await browser.post(f"{AUTH}/logout")
    assert out.status_code == 204 and browser.cookies.get(REFRESH_COOKIE) is None
    after = await browser.post(f"{AUTH}/refresh")
    assert after.status_code == 401 and after.json()["error"]["details"][0]["reason"] == "TOKEN_MISSING"
    # Without the cookie there is nothing to refresh.
    anonymous = await gateway.client(None).post(f"{AUTH}/refresh")
    assert (
        anonymous.status_code == 401 and anonymous.json()["error"]["details"][0]["reason"] == "TOKEN_MISSING"
    )


async def test_log_out_everywhere_voids_tokens_in_every_service(gateway: Gateway) -> None:
    _users(gateway).add("sam", "operator", PASSWORD, replace=True)
    browser, token = await _login(gateway, "sam")
    old_refresh = browser.cookies.get(REFRESH_COOKIE)
    assert not await _grpc_refuses(gateway, token)

    done = await browser.post(f"{AUTH}/logout-all", headers={"authorization": f"Bearer {token}"})
    assert done.status_code == 200, done.text
    assert done.json()["subject"] == "sam"
    await until(lambda: _grpc_refuses(gateway, token), limit=5, what="the token refused by gRPC")
    me = await browser.get(f"{AUTH}/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 401 and me.json()["error"]["details"][0]["reason"] == "TOKEN_REVOKED"
    # The refresh cookie issued before is refused too.
    stolen = httpx.AsyncClient(base_url=gateway.url, cookies={REFRESH_COOKIE: str(old_refresh)})
    gateway.clients.append(stolen)
    replay = await stolen.post(f"{AUTH}/refresh")
    assert replay.status_code == 401 and replay.json()["error"]["details"][0]["reason"] == "TOKEN_REVOKED"
    # Logging in again works at once.
    _, fresh = await _login(gateway, "sam")
    assert not await _grpc_refuses(gateway, fresh)
    entries = await _audit(gateway, "LOGOUT_ALL", "sam")
    assert [(e["actor"], e["outcome"]) for e in entries] == [("sam", "AUDIT_OUTCOME_SUCCEEDED")]


async def test_an_admin_logs_a_user_out_everywhere(gateway: Gateway) -> None:
    _users(gateway).add("tina", "viewer", PASSWORD, replace=True)
    _, token = await _login(gateway, "tina")
    denied = await gateway.client("operator").post(f"{AUTH}/users/tina/logout-all")
    assert denied.status_code == 403
    assert not await _grpc_refuses(gateway, token)
    done = await gateway.client("admin", "boss").post(f"{AUTH}/users/tina/logout-all")
    assert done.status_code == 200, done.text
    await until(lambda: _grpc_refuses(gateway, token), limit=5, what="the token refused by gRPC")
    bad = await gateway.client("admin").post(f"{AUTH}/users/no%20such%20name/logout-all")
    assert bad.status_code == 400 and "name" in bad.text
    entries = await _audit(gateway, "LOGOUT_ALL", "tina")
    assert [(e["actor"], e["role"]) for e in entries] == [("boss", "admin")]


async def test_a_removed_users_token_is_refused_by_the_services(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _users(gateway).add("ursula", "operator", PASSWORD, replace=True)
    _, token = await _login(gateway, "ursula")
    assert not await _grpc_refuses(gateway, token)
    # `workermon user remove` run in another container beside the suite (as compose's gateway container
    # does): no database of its own, so it reaches the suite only through the suite's Redis (the
    # revocation) and MonitorService (the audit entry).
    settings = gateway.settings
    for name in [n for n in os.environ if n.startswith("WORKERMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("WORKERMON_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WORKERMON_USERS_FILE", str(_users(gateway).path))
    monkeypatch.setenv("REDIS_URL", gateway.redis_url)
    monkeypatch.setenv("WORKERMON_REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("WORKERMON_JWT_SECRET", TEST_SECRET)
    monkeypatch.setenv("WORKERMON_MONITOR_TARGET", gateway.suite.grpc_target)
    # In a thread of its own, as the command runs its own event loop.
    assert await asyncio.to_thread(main, ["user", "remove", "ursula"]) == 0
    await until(lambda: _grpc_refuses(gateway, token), limit=5, what="the removed user's token refused")
    entries = await _audit(gateway, "USER_REMOVE", "ursula")
    assert [(e["actor"], e["outcome"]) for e in entries] == [(cli_actor(), "AUDIT_OUTCOME_SUCCEEDED")]

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert (
        await asyncio.to_thread(main, ["user", "add", "ursula", "--role", "viewer", "--password-stdin"]) == 0
    )
    added = await _audit(gateway, "USER_ADD", "ursula")
    assert [(e["actor"], e["parameters"]) for e in added] == [
        (cli_actor(), {"role": "viewer", "replace": False, "via": "cli", "host": os.uname().nodename})
    ]
    _, fresh = await _login(gateway, "ursula")
    assert not await _grpc_refuses(gateway, fresh)


async def test_logins_are_audited_with_the_address_and_the_reason(gateway: Gateway) -> None:
    _users(gateway).add("victor", "viewer", PASSWORD, replace=True)
    await _login(gateway, "victor")
    wrong = await gateway.client(None).post(
        f"{AUTH}/login", json={"username": "victor", "password": "not the password at all"}
    )
    assert wrong.status_code == 401
    entries = await _audit(gateway, "LOGIN", "victor")
    shown = [(e["actor"], e["role"], e["outcome"], e["parameters"], e.get("result")) for e in entries]
    assert shown == [
        (
            "anonymous",
            "none",
            "AUDIT_OUTCOME_DENIED",
            {"username": "victor", "address": "127.0.0.1"},
            {"reason": "BAD_CREDENTIALS"},
        ),
        ("victor", "viewer", "AUDIT_OUTCOME_SUCCEEDED", {"username": "victor", "address": "127.0.0.1"}, None),
    ]


async def test_create_audit_log_takes_the_new_actions_about_users_only(gateway: Gateway) -> None:
    channel = open_channel(gateway.suite.grpc_target, gateway.token("admin", "gateway"))
    try:
        monitor = mon_grpc.MonitorServiceStub(channel)
        entry = mon_pb.AuditLog(
            actor="anonymous",
            role="none",
            action=mon_pb.AUDIT_ACTION_LOGIN,
            entity_id="walter",
            outcome=mon_pb.AUDIT_OUTCOME_DENIED,
        )
        written = (await monitor.CreateAuditLog(mon_pb.CreateAuditLogRequest(audit_log=entry))).audit_log
        assert (written.entity_type, written.entity_id, written.action) == ("user", "walter", entry.action)
        entry.entity_type = "incident"
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await monitor.CreateAuditLog(mon_pb.CreateAuditLogRequest(audit_log=entry))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "audit_log.entity_type" in (refused.value.details() or "")
    finally:
        await channel.close()
