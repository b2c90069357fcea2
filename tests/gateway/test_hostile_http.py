"""Hostile HTTP bodies and parameters against the real gateway and suite: a 400 naming the field, never
a 500 (nested JSON, huge strings, enums out of range, timestamps past the year 9999)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.gateway import Gateway

NESTED = "[" * 100_000 + "]" * 100_000


def violation(reply: httpx.Response) -> str:
    """The field a 400 names (BadRequest's field violation)."""
    assert reply.status_code == 400, reply.text[:500]
    error = reply.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    for detail in error["details"]:
        if detail["@type"].endswith("google.rpc.BadRequest"):
            return str(detail["fieldViolations"][0]["field"])
    raise AssertionError(f"no field violation in {error}")


@pytest.fixture
async def queue(gateway: Gateway) -> str:
    """A queue the suite knows (one waiting job), private to the test."""
    name = f"hostile-http-{uuid.uuid4().hex[:8]}"
    await gateway.queue(name).add("x", {})
    return name


@pytest.mark.parametrize("body", [NESTED, "[" * 5000, '{"username": ' * 3000])
async def test_login_with_nested_json_is_a_400(gateway: Gateway, body: str) -> None:
    """No token needed to reach the login route: its parser must not fall over either."""
    reply = await gateway.client().post(
        f"{gateway.api}/v1/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert violation(reply) == "body"


@pytest.mark.parametrize("role", ["viewer", "admin"])
async def test_api_bodies_nested_too_deep_are_a_400(gateway: Gateway, queue: str, role: str) -> None:
    client = gateway.client(role)
    for body in (NESTED, '{"reason": ' + "[" * 70 + "]" * 70 + "}"):
        reply = await client.post(
            f"{gateway.api}/v1/queues/{queue}:pause",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert violation(reply) == "body"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (":pause", {"reason": "r" * 1_000_000}, "reason"),
        (":clean", {"state": 999}, "state"),
        (":clean", {"state": 2**40}, "state"),
        (":clean", {"state": "JOB_STATE_NOT_A_STATE"}, "state"),
        (":clean", {"state": "JOB_STATE_COMPLETED", "grace": "315576000001s"}, "grace"),
        ("/jobs", {"name": "n", "data": NESTED}, "data"),
        ("/jobs", {"name": "n", "data": '"' + "x" * 600_000 + '"'}, "data"),
        ("/jobs", {"name": "n" * 201}, "name"),
    ],
)
async def test_hostile_action_bodies_are_a_400_naming_the_field(
    gateway: Gateway, queue: str, path: str, body: dict[str, Any], field: str
) -> None:
    if path == ":clean":
        body = {**body, "confirm": queue}
    reply = await gateway.client("admin").post(f"{gateway.api}/v1/queues/{queue}{path}", json=body)
    assert violation(reply) == field


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/queues/{queue}/trend", {"startTime": "10000-01-01T00:00:00Z"}, "startTime"),
        ("/v1/queues/{queue}/trend", {"endTime": "9999-12-31T23:59:60Z"}, "endTime"),
        ("/v1/auditLogs", {"endTime": "10000-01-01T00:00:00Z"}, "endTime"),
        ("/v1/auditLogs", {"action": "999"}, "action"),
        ("/v1/auditLogs", {"actor": "a" * 5000}, "actor"),
        ("/v1/queues", {"status": "999"}, "status"),
        ("/v1/queues", {"namePrefix": "p" * 5000}, "name_prefix"),
        ("/v1/queues/{queue}/jobs", {"failureCategory": "c" * 5000}, "failure_category"),
        ("/v1/workers", {"hostname": "h" * 5000}, "hostname"),
        ("/v1/incidents", {"status": "999"}, "status"),
    ],
)
async def test_hostile_query_parameters_are_a_400_naming_the_field(
    gateway: Gateway, queue: str, path: str, params: dict[str, str], field: str
) -> None:
    reply = await gateway.client("admin").get(gateway.api + path.format(queue=queue), params=params)
    assert violation(reply) == field
