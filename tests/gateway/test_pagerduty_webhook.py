"""PagerDuty's v3 webhooks through the real gateway and IncidentService: a signed incident.acknowledged
acknowledges the incident its title names (audited as "pagerduty", shown in the timeline), a signed
incident.resolved resolves it; unsigned or mis-signed deliveries are refused, events about other
incidents are accepted and ignored, and without a secret the route does not exist."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.bull import until
from tests.support.gateway import Gateway, start_gateway_suite, stop_gateway_suite
from workermon_core.incident_ref import incident_tag, tagged_incident

SECRET = "pd-signing-secret-for-tests"
QUEUE = "pd-unattended"
HOOK = "/api/v1/integrations/pagerduty/webhook"


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Gateway]:
    """A suite whose "no workers" rule fires at once for QUEUE, with a PagerDuty signing secret (and an old
    one still accepted, as during a rotation)."""
    running = await start_gateway_suite(
        tmp_path_factory.mktemp("pagerduty"),
        redis_url,
        pagerduty_webhook_secret=f"old-secret,{SECRET}",
        incident_rules=json.dumps({QUEUE: {"no_workers_pending_minutes": 0}}),
    )
    yield running
    await stop_gateway_suite(running)


def _delivery(event_type: str, title: str, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "event": {
                "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-12-06T04:00:00.000Z",
                "agent": {"id": "PLH1HKV", "summary": "Jane Oncall", "type": "user_reference"},
                "client": {"name": "PagerDuty"},
                "data": {
                    "id": "PGR0VU2",
                    "type": "incident",
                    "html_url": "https://acme.pagerduty.com/incidents/PGR0VU2",
                    "status": event_type.split(".")[1],
                    "title": title,
                },
            }
        }
    ).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-PagerDuty-Signature": f"v1=deadbeef,v1={signature}"}


async def _active_incident(gateway: Gateway) -> dict[str, Any]:
    viewer, operator = gateway.client("viewer"), gateway.client("operator")
    await gateway.queue(QUEUE).add("x", {})
    await operator.post("/api/v1/collector:collectNow", json={"queues": [QUEUE]})
    found: list[dict[str, Any]] = []

    async def fired() -> bool:
        reply = await viewer.get("/api/v1/incidents", params={"queue": QUEUE, "openOnly": "true"})
        found[:] = [i for i in reply.json().get("incidents", []) if i["status"] == "INCIDENT_STATUS_ACTIVE"]
        return bool(found)

    await until(fired, limit=15, what=f"an active incident for {QUEUE}")
    return found[0]


def test_tag_round_trip() -> None:
    assert tagged_incident(f"No workers for invoices {incident_tag(42)}") == 42
    assert tagged_incident("No workers for invoices [incident #42] and more") is None
    assert tagged_incident("[incident #0]") is None


async def test_acknowledged_then_resolved_in_pagerduty(gateway: Gateway) -> None:
    incident = await _active_incident(gateway)
    title = f"{incident['title']} {incident_tag(int(incident['id']))}"
    async with httpx.AsyncClient(base_url=gateway.url) as pd:
        body, headers = _delivery("incident.acknowledged", title)
        acked = await pd.post(HOOK, content=body, headers=headers)
        assert acked.status_code == 200, acked.text
        assert acked.json() == {"incident": int(incident["id"]), "status": "INCIDENT_STATUS_ACKNOWLEDGED"}
        # PagerDuty redelivers; acknowledging again changes nothing.
        again = await pd.post(HOOK, content=body, headers=headers)
        assert again.status_code == 200 and again.json()["status"] == "INCIDENT_STATUS_ACKNOWLEDGED"

        body, headers = _delivery("incident.resolved", title)
        resolved = await pd.post(HOOK, content=body, headers=headers)
        assert resolved.status_code == 200 and resolved.json()["status"] == "INCIDENT_STATUS_RESOLVED"
        # A resolution delivered twice: nothing left to do, and PagerDuty must not retry it.
        twice = await pd.post(HOOK, content=body, headers=headers)
        assert twice.status_code == 202 and "RESOLVED" in twice.json()["ignored"]

    viewer = gateway.client("viewer")
    detail = (await viewer.get(f"/api/v1/incidents/{incident['id']}")).json()
    got = detail["incident"]
    assert got["acknowledgedBy"] == "pagerduty" and got["resolvedBy"] == "pagerduty"
    link = "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert got["resolveNote"] == f"resolved in PagerDuty by Jane Oncall ({link})"
    acks = [e for e in detail["timeline"] if e["kind"] == "INCIDENT_EVENT_KIND_ACKNOWLEDGED"]
    notes = [e.get("message", "") for e in acks]
    assert notes == [f"acknowledged in PagerDuty by Jane Oncall ({link})"]
    audit = (await viewer.get("/api/v1/auditLogs", params={"entityId": incident["id"]})).json()["auditLogs"]
    assert {(a["action"], a["actor"]) for a in audit} == {
        ("AUDIT_ACTION_INCIDENT_ACKNOWLEDGE", "pagerduty"),
        ("AUDIT_ACTION_INCIDENT_RESOLVE", "pagerduty"),
    }


async def test_refused_and_ignored_deliveries(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as pd:
        body, headers = _delivery("incident.acknowledged", f"x {incident_tag(1)}", secret="not-the-secret")
        forged = await pd.post(HOOK, content=body, headers=headers)
        assert forged.status_code == 401 and "X-PagerDuty-Signature" in forged.text
        unsigned = await pd.post(HOOK, content=body, headers={"Content-Type": "application/json"})
        assert unsigned.status_code == 401
        # Signed by the secret being rotated out: still accepted (and here, about no incident of ours).
        body, headers = _delivery("incident.acknowledged", "Disk full on db-1", secret="old-secret")
        other = await pd.post(HOOK, content=body, headers=headers)
        assert other.status_code == 202 and "names no Worker Monitor incident" in other.json()["ignored"]
        body, headers = _delivery("incident.priority_updated", f"x {incident_tag(1)}")
        priority = await pd.post(HOOK, content=body, headers=headers)
        assert priority.status_code == 202 and "not acted on" in priority.json()["ignored"]
        body, headers = _delivery("incident.acknowledged", f"gone {incident_tag(987654)}")
        missing = await pd.post(HOOK, content=body, headers=headers)
        assert missing.status_code == 202 and "987654" in missing.json()["ignored"]
        garbage = b'{"not": "a webhook"}'
        signature = hmac.new(SECRET.encode(), garbage, hashlib.sha256).hexdigest()
        bad = await pd.post(HOOK, content=garbage, headers={"X-PagerDuty-Signature": f"v1={signature}"})
        assert bad.status_code == 400 and "event.event_type" in bad.text


async def test_route_absent_without_a_secret(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> None:
    running = await start_gateway_suite(tmp_path_factory.mktemp("no-pagerduty"), redis_url)
    try:
        async with httpx.AsyncClient(base_url=running.url) as pd:
            body, headers = _delivery("incident.acknowledged", f"x {incident_tag(1)}")
            reply = await pd.post(HOOK, content=body, headers=headers)
        assert reply.status_code == 404 and "not configured" in reply.text
    finally:
        await stop_gateway_suite(running)
