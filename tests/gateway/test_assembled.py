"""The gateway as `workermon up` serves it: login, the auth matrix, security headers, metrics, live stream."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
from prometheus_client.parser import text_string_to_metric_families

from tests.support.bull import until
from tests.support.gateway import Gateway
from workermon_gateway.users import UserStore, users_path


async def test_login_then_call_the_api_as_that_user(gateway: Gateway) -> None:
    UserStore(users_path(gateway.settings.gateway, gateway.settings.data_dir)).add(
        "olga", "operator", "correct horse battery staple", replace=True
    )
    anonymous = gateway.client(None)
    login = await anonymous.post(
        "/api/v1/auth/login", json={"username": "olga", "password": "correct horse battery staple"}
    )
    assert login.status_code == 200, login.text
    token = login.json()["accessToken"]
    assert login.json()["role"] == "operator" and login.json()["expiresIn"] <= 900
    headers = {"authorization": f"Bearer {token}"}
    me = await anonymous.get("/api/v1/auth/me", headers=headers)
    assert me.json()["subject"] == "olga"
    await gateway.queue("gw-login").add("x", {})
    paused = await anonymous.post("/api/v1/queues/gw-login:pause", headers=headers, json={})
    assert paused.status_code == 200 and paused.json()["changed"] is True
    audit = await anonymous.get("/api/v1/auditLogs", headers=headers, params={"queue": "gw-login"})
    assert [(a["actor"], a["action"]) for a in audit.json()["auditLogs"]] == [
        ("olga", "AUDIT_ACTION_QUEUE_PAUSE")
    ]
    wrong = await anonymous.post(
        "/api/v1/auth/login", json={"username": "olga", "password": "nope nope nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_auth_matrix(gateway: Gateway) -> None:
    await gateway.queue("gw-matrix").add("x", {})
    anonymous = gateway.client(None)
    now = int(time.time())
    claims = {"sub": "eve", "role": "admin", "iss": gateway.settings.jwt_issuer, "iat": now, "exp": now + 60}
    expired = gateway.authority.mint("old", "admin", ttl_seconds=-10)
    wrong_key = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (None, expired, wrong_key, unsigned, "not-a-jwt"):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        reply = await anonymous.get("/api/v1/overview", headers=headers)
        assert reply.status_code == 401, (token, reply.text)
        assert reply.json()["error"]["status"] == "UNAUTHENTICATED"
        assert reply.headers["www-authenticate"].startswith("Bearer")
    viewer_pause = await gateway.client("viewer").post("/api/v1/queues/gw-matrix:pause", json={})
    assert viewer_pause.status_code == 403
    operator_drain = await gateway.client("operator").post(
        "/api/v1/queues/gw-matrix:drain", json={"confirm": "gw-matrix"}
    )
    assert operator_drain.status_code == 403
    assert operator_drain.json()["error"]["details"][0]["metadata"]["required_role"] == "admin"
    admin_drain = await gateway.client("admin").post(
        "/api/v1/queues/gw-matrix:drain", json={"confirm": "gw-matrix"}
    )
    assert admin_drain.status_code == 200 and admin_drain.json()["removed"] == "1"


async def test_security_headers_and_metrics(gateway: Gateway) -> None:
    reply = await gateway.client("viewer").get("/api/v1/queues")
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"
    await gateway.queue("gw-metrics").add("x", {})

    async def exported() -> bool:
        text = (await gateway.client(None).get("/metrics")).text
        return 'workermon_queue_jobs{queue="gw-metrics",state="waiting"} 1.0' in text

    await until(exported, limit=10, what="the new queue in /metrics")
    families = {
        f.name: f for f in text_string_to_metric_families((await gateway.client(None).get("/metrics")).text)
    }
    assert {"workermon_queue_jobs", "workermon_workers_online", "workermon_http_requests"} <= set(families)


async def test_live_stream_through_the_assembled_gateway(gateway: Gateway) -> None:
    token = gateway.token("viewer")
    client = gateway.client(None)
    events: list[tuple[str, dict[str, object]]] = []

    async def read() -> None:
        async with client.stream("GET", "/api/v1/stream", params={"access_token": token}) as reply:
            assert reply.status_code == 200
            kind = ""
            async for line in reply.aiter_lines():
                if line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((kind, json.loads(line.split(":", 1)[1])))

    reader = asyncio.create_task(read())
    try:
        await until(lambda: _has(events, "overview"), limit=10, what="the first overview event")
        await gateway.beat("gw-stream-worker", ["gw-stream"])
        await until(lambda: _has(events, "worker"), limit=10, what="the worker's ONLINE transition")
        worker = next(data for kind, data in events if kind == "worker")
        assert worker["workerId"] == "gw-stream-worker"
    finally:
        reader.cancel()


async def _has(events: list[tuple[str, dict[str, object]]], kind: str) -> bool:
    return any(k == kind for k, _ in events)
