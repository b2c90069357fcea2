"""The admin UI build at `/`: hashed assets cached for good, everything else revalidated, SPA fallback,
and a pointer to the docs when there is no build.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fakes import TEST_SECRET
from tests.support.gateway import gateway_settings
from workermon_core.auth import TokenAuthority
from workermon_gateway.app import build_app, serve_http
from workermon_gateway.upstream import Upstream

INDEX = "<!doctype html><title>Worker Monitor UI</title><div id=root></div>"


async def _client(
    settings_dir: Path, redis_url: str, ui: Path | None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(settings_dir, redis_url, admin_ui_dir=ui, **overrides)
    upstream = Upstream("127.0.0.1:1")
    handle = await serve_http(
        build_app(settings.gateway, upstream, TokenAuthority(TEST_SECRET)), "127.0.0.1", 0
    )
    async with httpx.AsyncClient(base_url=handle.url) as client:
        yield client
    await handle.stop()
    await upstream.close()


@pytest.fixture
async def ui_client(tmp_path: Path, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text(INDEX)
    (dist / "assets" / "app-abc123.js").write_text("console.log('ui')")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the build")
    async for client in _client(tmp_path, redis_url, dist):
        yield client


async def test_hashed_assets_are_immutable(ui_client: httpx.AsyncClient) -> None:
    reply = await ui_client.get("/assets/app-abc123.js")
    assert reply.status_code == 200 and reply.text == "console.log('ui')"
    assert reply.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in reply.headers["content-type"]


async def test_other_files_and_the_spa_fallback_revalidate(ui_client: httpx.AsyncClient) -> None:
    for path in ("/", "/index.html", "/queues/emails", "/jobs/emails/42?tab=logs"):
        reply = await ui_client.get(path)
        assert reply.status_code == 200 and reply.text == INDEX, path
        assert reply.headers["cache-control"] == "no-cache"
    icon = await ui_client.get("/favicon.svg")
    assert icon.text == "<svg/>" and icon.headers["cache-control"] == "no-cache"


async def test_what_the_ui_does_not_serve(ui_client: httpx.AsyncClient) -> None:
    missing = await ui_client.get("/assets/app-gone99.js")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    escape = await ui_client.get("/%2e%2e/secret.txt")
    assert escape.status_code == 404 or escape.text == INDEX
    assert "outside the build" not in escape.text
    assert (await ui_client.post("/queues")).status_code == 405
    # API paths never fall back to the UI.
    api = await ui_client.get("/api/v1/no-such-route")
    assert api.status_code == 404 and api.json()["error"]["code"] == 404
    assert (await ui_client.get("/docs")).status_code == 200


async def test_without_a_build_the_root_points_to_the_docs(tmp_path: Path, redis_url: str) -> None:
    async for client in _client(tmp_path, redis_url, tmp_path / "no-build"):
        page = await client.get("/")
        assert page.status_code == 200 and "not built" in page.text and "/docs" in page.text
        assert (await client.get("/queues")).status_code == 404


async def test_the_page_tells_the_ui_where_the_api_is(tmp_path: Path, redis_url: str) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<html><head><title>UI</title></head><body></body></html>")
    async for client in _client(tmp_path, redis_url, dist, base_path="/admin/worker-monitor/api"):
        for path in ("/", "/queues/emails"):
            page = (await client.get(path)).text
            assert '<meta name="workermon-api-base" content="/admin/worker-monitor/api" />' in page, path
