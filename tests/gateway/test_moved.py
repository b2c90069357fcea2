"""Moved API paths: the old path answers 308 to the new one (query string kept, under the base path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.fakes import TEST_SECRET
from tests.support.gateway import Gateway, gateway_settings
from workermon_core.auth import TokenAuthority
from workermon_gateway.app import build_app, serve_http
from workermon_gateway.moved import MOVED, moved_paths, moved_target
from workermon_gateway.routes import build_routes
from workermon_gateway.upstream import Upstream


def test_every_moved_path_leads_to_a_route_and_shadows_none() -> None:
    routes = build_routes()
    templates = {r.template.template for r in routes}
    for old, new in MOVED.items():
        assert new in templates, f"{old} moved to {new}, which is no route"
        # The redirect applies only where no route answers: an old path a route still serves is not moved.
        assert old not in templates
        assert not any(r.template.match(old) is not None for r in routes), old


def test_variables_are_carried_as_they_came() -> None:
    moved = moved_paths({"/v1/old/{queue}/items/{item_id}:touch": "/v1/newItems/{queue}/{item_id}:touch"})
    assert moved_target(moved, "/v1/old/a%3Ab%2Fc/items/7:touch") == "/v1/newItems/a%3Ab%2Fc/7:touch"
    assert moved_target(moved, "/v1/old/a/items/7") is None
    with pytest.raises(ValueError, match="same variables"):
        moved_paths({"/v1/old/{queue}": "/v1/new"})


async def test_old_audit_log_path_redirects_to_the_new_one(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    await gateway.queue("gw-moved").add("x", {})
    paused = await gateway.client("operator").post("/api/v1/queues/gw-moved:pause", json={})
    assert paused.status_code == 200, paused.text

    old = await viewer.get("/api/v1/audit-logs", params={"queue": "gw-moved", "pageSize": 5})
    assert old.status_code == 308, old.text
    assert old.headers["location"] == "/api/v1/auditLogs?queue=gw-moved&pageSize=5"
    bare = await viewer.get("/api/v1/audit-logs")
    assert bare.status_code == 308 and bare.headers["location"] == "/api/v1/auditLogs"
    # No token needed to learn where a path went; the new path then asks for one.
    anonymous = await gateway.client(None).get("/api/v1/audit-logs?actor=a%20b")
    assert anonymous.status_code == 308
    assert anonymous.headers["location"] == "/api/v1/auditLogs?actor=a%20b"

    new = await viewer.get("/api/v1/auditLogs", params={"queue": "gw-moved", "pageSize": 5})
    assert new.status_code == 200, new.text
    assert [e["action"] for e in new.json()["auditLogs"]] == ["AUDIT_ACTION_QUEUE_PAUSE"]

    followed = await viewer.get(
        "/api/v1/audit-logs", params={"queue": "gw-moved", "pageSize": 5}, follow_redirects=True
    )
    assert followed.status_code == 200 and followed.json() == new.json()
    assert [str(r.url.path) for r in followed.history] == ["/api/v1/audit-logs"]
    # Still an unknown path next to it: 404 in the error shape.
    assert (await viewer.get("/api/v1/audit-logz")).status_code == 404


@pytest.fixture
async def moved_client(tmp_path: Path, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(tmp_path, redis_url, base_path="/admin/worker-monitor/api")
    upstream = Upstream("127.0.0.1:1")
    handle = await serve_http(
        build_app(settings.gateway, upstream, TokenAuthority(TEST_SECRET)), "127.0.0.1", 0
    )
    async with httpx.AsyncClient(base_url=handle.url) as client:
        yield client
    await handle.stop()
    await upstream.close()


async def test_the_redirect_stays_under_the_configured_base_path(moved_client: httpx.AsyncClient) -> None:
    reply = await moved_client.post("/admin/worker-monitor/api/v1/audit-logs?pageToken=x%2By", json={})
    assert reply.status_code == 308
    assert reply.headers["location"] == "/admin/worker-monitor/api/v1/auditLogs?pageToken=x%2By"
    assert (await moved_client.get("/api/v1/audit-logs")).status_code != 308
