"""Every error in one shape: unknown routes, bad parameters and bodies, auth, roles, missing things, and an
upstream that is down or too slow.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.support.fakes import TEST_SECRET
from tests.support.gateway import Gateway, gateway_settings
from workermon_core.auth import TokenAuthority
from workermon_gateway.app import HttpHandle, build_app, serve_http
from workermon_gateway.errors import http_status
from workermon_gateway.routes import SERVICES
from workermon_gateway.upstream import Upstream


def error_of(reply: httpx.Response, code: int, status: str) -> dict[str, Any]:
    assert reply.status_code == code, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == code and error["status"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert all("@type" in d for d in error["details"])
    return error


def detail(error: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [d for d in error["details"] if d["@type"].endswith(kind)]
    assert found, f"no {kind} in {error['details']}"
    return found[0]


async def test_unknown_route_and_wrong_method(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    error = error_of(await viewer.get("/api/v1/nothing-here"), 404, "NOT_FOUND")
    assert detail(error, "ErrorInfo")["reason"] == "ROUTE_NOT_FOUND"
    error_of(await viewer.get("/api/v2/overview"), 404, "NOT_FOUND")
    error_of(await viewer.get("/api"), 404, "NOT_FOUND")
    wrong = await viewer.delete("/api/v1/overview")
    error_of(wrong, 405, "UNIMPLEMENTED")
    assert wrong.headers["allow"] == "GET"
    # Outside the API: a POST to the UI is refused in the same shape.
    error_of(await viewer.post("/some/page"), 405, "UNIMPLEMENTED")


async def test_malformed_parameters_name_the_parameter(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    cases = {
        "pageSize=abc": "pageSize",
        "states=bogus": "states",
        "full=maybe": "full",
        "nope=1": "nope",
        "queue=other": "queue",
    }
    for query, name in cases.items():
        path = "/api/v1/queues/q/jobs" if name != "full" else "/api/v1/queues/q/jobs/1"
        error = error_of(await viewer.get(f"{path}?{query}"), 400, "INVALID_ARGUMENT")
        assert name in error["message"], (query, error)
        assert detail(error, "BadRequest")["fieldViolations"][0]["field"] == name
    bad_time = await viewer.get("/api/v1/queues/q/trend?startTime=yesterday")
    assert "startTime" in error_of(bad_time, 400, "INVALID_ARGUMENT")["message"]
    bad_step = await viewer.get("/api/v1/queues/q/trend?step=5 minutes")
    assert "step" in error_of(bad_step, 400, "INVALID_ARGUMENT")["message"]
    # Negative page sizes are the service's to refuse: passed on, with its BadRequest.
    negative = error_of(await viewer.get("/api/v1/auditLogs?pageSize=-1"), 400, "INVALID_ARGUMENT")
    assert "page_size" in negative["message"]


async def test_malformed_bodies(gateway: Gateway) -> None:
    operator = gateway.client("operator")
    unknown = await operator.post("/api/v1/queues/q:pause", json={"reason": "x", "bogus": 1})
    error = error_of(unknown, 400, "INVALID_ARGUMENT")
    assert (
        "bogus" in error["message"] and detail(error, "BadRequest")["fieldViolations"][0]["field"] == "bogus"
    )
    wrong_type = await operator.post("/api/v1/queues/q:retryFailed", json={"limit": "many"})
    assert "limit" in error_of(wrong_type, 400, "INVALID_ARGUMENT")["message"]
    not_json = await operator.post("/api/v1/queues/q:pause", content=b"{nope")
    assert detail(error_of(not_json, 400, "INVALID_ARGUMENT"), "ErrorInfo")["reason"] == "INVALID_JSON"
    not_object = await operator.post("/api/v1/queues/q:pause", json=[1, 2])
    error_of(not_object, 400, "INVALID_ARGUMENT")
    query_on_body_route = await operator.post("/api/v1/queues/q:pause?reason=x", json={})
    assert "reason" in error_of(query_on_body_route, 400, "INVALID_ARGUMENT")["message"]


async def test_authentication_and_roles(gateway: Gateway) -> None:
    anonymous = gateway.client(None)
    missing = await anonymous.get("/api/v1/overview")
    error_of(missing, 401, "UNAUTHENTICATED")
    assert missing.headers["www-authenticate"] == "Bearer"
    garbage = await anonymous.get("/api/v1/overview", headers={"authorization": "Bearer not.a.token"})
    error_of(garbage, 401, "UNAUTHENTICATED")
    basic = await anonymous.get("/api/v1/overview", headers={"authorization": "Basic dXNlcjpwdw=="})
    error_of(basic, 401, "UNAUTHENTICATED")
    foreign = TokenAuthority("another-secret-" + "y" * 40).mint("mallory", "admin")
    forged = await anonymous.get("/api/v1/overview", headers={"authorization": f"Bearer {foreign}"})
    error_of(forged, 401, "UNAUTHENTICATED")

    viewer = gateway.client("viewer", "vera")
    await gateway.queue("gw-roles").add("x", {})
    # action_role: the service refuses (and audits) the viewer's pause.
    denied = error_of(await viewer.post("/api/v1/queues/gw-roles:pause", json={}), 403, "PERMISSION_DENIED")
    assert detail(denied, "ErrorInfo")["reason"]
    audit = (
        await gateway.client("admin").get(
            "/api/v1/auditLogs", params={"actor": "vera", "outcome": "denied", "queue": "gw-roles"}
        )
    ).json()["auditLogs"]
    assert len(audit) == 1 and audit[0]["action"] == "AUDIT_ACTION_QUEUE_PAUSE"
    # min_role: refused at the gateway already.
    early = error_of(await viewer.post("/api/v1/collector:collectNow", json={}), 403, "PERMISSION_DENIED")
    assert detail(early, "ErrorInfo")["reason"] == "ROLE_NOT_ALLOWED"
    worker = gateway.client("worker")
    error_of(await worker.get("/api/v1/overview"), 403, "PERMISSION_DENIED")


async def test_not_found_from_services(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    error = error_of(await viewer.get("/api/v1/queues/gw-no-such-queue"), 404, "NOT_FOUND")
    # The domain names the service that refused; the gateway's own refusals carry its own.
    assert detail(error, "ErrorInfo")["domain"] == "monitor.workermon"
    error_of(await viewer.get("/api/v1/workers/no-such-worker"), 404, "NOT_FOUND")
    route = error_of(await viewer.get("/api/v1/no-such-collection"), 404, "NOT_FOUND")
    assert detail(route, "ErrorInfo") == {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "ROUTE_NOT_FOUND",
        "domain": "gateway.workermon",
    }
    await gateway.queue("gw-jobs-nf").add("x", {})
    error_of(await viewer.get("/api/v1/queues/gw-jobs-nf/jobs/99999"), 404, "NOT_FOUND")


async def test_request_id_is_accepted_and_echoed(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    reply = await viewer.get("/api/v1/overview", headers={"x-request-id": "abc-123"})
    assert reply.headers["x-request-id"] == "abc-123"
    odd = await viewer.get("/api/v1/overview", headers={"x-request-id": "bad id\twith spaces"})
    assert odd.headers["x-request-id"] != "bad id\twith spaces" and len(odd.headers["x-request-id"]) == 32
    assert (await viewer.get("/api/v1/nothing")).headers["x-request-id"]


def test_status_mapping() -> None:
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.FAILED_PRECONDITION: 400,
        grpc.StatusCode.OUT_OF_RANGE: 400,
        grpc.StatusCode.UNAUTHENTICATED: 401,
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.ABORTED: 409,
        grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.CANCELLED: 499,
        grpc.StatusCode.UNIMPLEMENTED: 501,
        grpc.StatusCode.UNAVAILABLE: 503,
        grpc.StatusCode.DEADLINE_EXCEEDED: 504,
        grpc.StatusCode.INTERNAL: 500,
        grpc.StatusCode.UNKNOWN: 500,
        grpc.StatusCode.DATA_LOSS: 500,
    }
    assert {code: http_status(code) for code in expected} == expected


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def orphan(tmp_path: Path, redis_url: str) -> AsyncIterator[tuple[HttpHandle, TokenAuthority]]:
    """A gateway whose upstream port has nothing listening."""
    settings = gateway_settings(tmp_path, redis_url)
    authority = TokenAuthority(TEST_SECRET)
    upstream = Upstream(f"127.0.0.1:{closed_port()}")
    handle = await serve_http(build_app(settings.gateway, upstream, authority), "127.0.0.1", 0)
    yield handle, authority
    await handle.stop()
    await upstream.close()


async def test_upstream_down_is_503(orphan: tuple[HttpHandle, TokenAuthority]) -> None:
    handle, authority = orphan
    headers = {"authorization": f"Bearer {authority.mint('vera', 'viewer')}"}
    async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
        error = error_of(await client.get("/api/v1/overview"), 503, "UNAVAILABLE")
        assert detail(error, "ErrorInfo")["reason"] == "UPSTREAM_UNAVAILABLE"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and len(ready.json()["notServing"]) == len(SERVICES)
        assert (await client.get("/healthz")).status_code == 200


async def test_slow_upstream_is_504(tmp_path: Path, redis_url: str) -> None:
    """A server that accepts the connection and never answers: the deadline ends the call."""
    server = grpc.aio.server()
    port = server.add_insecure_port("127.0.0.1:0")

    async def hang(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await asyncio.sleep(30)
        return b""

    handler = grpc.method_handlers_generic_handler(
        "workermon.monitor.v1.MonitorService", {"GetOverview": grpc.unary_unary_rpc_method_handler(hang)}
    )
    server.add_generic_rpc_handlers([handler])
    await server.start()
    upstream = Upstream(f"127.0.0.1:{port}", deadline_seconds=0.3)
    authority = TokenAuthority(TEST_SECRET)
    handle = await serve_http(
        build_app(gateway_settings(tmp_path, redis_url).gateway, upstream, authority), "127.0.0.1", 0
    )
    try:
        headers = {"authorization": f"Bearer {authority.mint('vera', 'viewer')}"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
            error_of(await client.get("/api/v1/overview"), 504, "DEADLINE_EXCEEDED")
    finally:
        await handle.stop()
        await upstream.close()
        await server.stop(0)


async def test_unexpected_failure_is_500_with_request_id(tmp_path: Path, redis_url: str) -> None:
    class Broken(Upstream):
        async def unary_bytes(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("secret internals")

    authority = TokenAuthority(TEST_SECRET)
    upstream = Broken("127.0.0.1:1")
    handle = await serve_http(
        build_app(gateway_settings(tmp_path, redis_url).gateway, upstream, authority), "127.0.0.1", 0
    )
    try:
        headers = {"authorization": f"Bearer {authority.mint('vera', 'viewer')}", "x-request-id": "rid-500"}
        async with httpx.AsyncClient(base_url=handle.url, headers=headers) as client:
            reply = await client.get("/api/v1/overview")
        error = error_of(reply, 500, "INTERNAL")
        assert "rid-500" in error["message"] and "secret internals" not in reply.text
        assert "Traceback" not in reply.text and reply.headers["x-request-id"] == "rid-500"
    finally:
        await handle.stop()
