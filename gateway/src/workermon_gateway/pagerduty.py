"""`POST {base}/v1/integrations/pagerduty/webhook`: acknowledgements and resolutions made in PagerDuty,
applied to the incidents they are about.

The PagerDuty channel triggers with the incident's fingerprint as dedup_key and ends its summary with
the incident's tag ("[incident #42]", workermon_core.incident_ref). PagerDuty titles its incident with
that summary and sends the title back in its v3 webhooks (not the dedup_key), so the tag is what finds
our incident. Point a PagerDuty v3 webhook subscription (events incident.acknowledged and
incident.resolved) at this URL and give its signing secret to WORKERMON_PAGERDUTY_WEBHOOK_SECRET.

Every delivery must carry a valid `X-PagerDuty-Signature` (HMAC-SHA256 of the raw body, hex, "v1=",
several during a secret rotation, compared in constant time); without a secret configured the route
answers 404. The change is made through IncidentService as the subject "pagerduty" (an operator to
acknowledge, an admin to resolve), so it is audited and shows in the incident's timeline with who did
it in PagerDuty. PagerDuty retries a delivery answered with anything but 2xx, so 503 is answered only
when the incident service or its audit log cannot be reached; an event we cannot act on (another
source's incident, one already resolved) is answered 202 with the reason, not an error it would retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon_core import context
from workermon_core.auth import Principal
from workermon_core.errors import InvalidArgument, Unauthenticated
from workermon_core.incident_ref import tagged_incident
from workermon_core.peer import Peer

from .errors import domain_error_response, error_response, http_status

log = structlog.get_logger("workermon.gateway.pagerduty")

SUBJECT = "pagerduty"
SIGNATURE_HEADER = "x-pagerduty-signature"
# A v3 webhook carries one event of a few kilobytes.
MAX_BODY_BYTES = 256 * 1024
CALL_TIMEOUT_SECONDS = 10.0
_ROLES = {"incident.acknowledged": "operator", "incident.resolved": "admin"}


def signed(body: bytes, header: str, secrets: list[str]) -> bool:
    """True when one of the header's v1 signatures is the HMAC-SHA256 of `body` under one of `secrets`."""
    offered = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    for secret in secrets:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False


@dataclass(frozen=True)
class _Event:
    """What a v3 webhook says happened, reduced to what is acted on."""

    type: str
    incident_id: int | None
    agent: str
    url: str


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _event(payload: object) -> _Event:
    """The event of a v3 webhook body; InvalidArgument naming the field when it is not one."""
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise InvalidArgument("event.event_type", "is required: this is not a PagerDuty v3 webhook")
    data = _object(event.get("data"))
    agent = _object(event.get("agent"))
    title = data.get("title")
    return _Event(
        type=event["event_type"],
        incident_id=tagged_incident(title) if isinstance(title, str) else None,
        agent=str(agent.get("summary") or agent.get("id") or "someone")[:200],
        url=str(data.get("html_url") or "")[:500],
    )


class PagerDutyReceiver:
    """Verifies a v3 webhook delivery and applies it through IncidentService."""

    def __init__(
        self,
        secrets: list[str],
        incidents: Peer[inc_grpc.IncidentServiceStub],
    ) -> None:
        # `incidents` must present tokens on behalf of the caller (ServiceTokens.on_behalf): the call is
        # made as "pagerduty", not as the gateway.
        self._secrets = [s for s in secrets if s]
        self._incidents = incidents

    async def handle(self, request: Request) -> Response:
        """One delivery: 401 unsigned, 400 malformed, 202 nothing to do, 200 applied, 503 try later."""
        if not self._secrets:
            return error_response(grpc.StatusCode.NOT_FOUND, "the PagerDuty webhook is not configured")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return domain_error_response(InvalidArgument("body", f"must be at most {MAX_BODY_BYTES} bytes"))
        if not signed(body, request.headers.get(SIGNATURE_HEADER, ""), self._secrets):
            log.warning("pagerduty_webhook_unsigned", client=request.client.host if request.client else "")
            return domain_error_response(
                Unauthenticated("X-PagerDuty-Signature does not match the configured signing secret")
            )
        try:
            event = _event(json.loads(body))
        except ValueError:
            return domain_error_response(InvalidArgument("body", "must be a JSON object"))
        except InvalidArgument as err:
            return domain_error_response(err)
        role = _ROLES.get(event.type)
        if role is None:
            return _ignored(f"{event.type} is not acted on")
        if event.incident_id is None:
            return _ignored("the PagerDuty incident's title names no Worker Monitor incident")
        return await self._apply(event, role)

    async def _apply(self, event: _Event, role: str) -> Response:
        note = f"in PagerDuty by {event.agent}" + (f" ({event.url})" if event.url else "")
        incident_id = event.incident_id or 0
        stub = self._incidents.stub
        token = context.principal.set(Principal(SUBJECT, role, time.time() + CALL_TIMEOUT_SECONDS))
        try:
            if role == "operator":
                acked = await stub.AcknowledgeIncident(
                    inc_pb.AcknowledgeIncidentRequest(incident_id=incident_id, note="acknowledged " + note),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                incident = acked.incident
            else:
                resolved = await stub.ResolveIncident(
                    inc_pb.ResolveIncidentRequest(incident_id=incident_id, note="resolved " + note),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                incident = resolved.incident
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return _ignored(f"incident {incident_id}: {exc.details()}")
            log.warning("pagerduty_webhook_not_applied", incident=incident_id, code=code.name)
            status = 503 if http_status(code) >= 500 else http_status(code)
            return error_response(code, exc.details() or code.name, http=status)
        finally:
            context.principal.reset(token)
        log.info("pagerduty_webhook_applied", incident=incident_id, kind=event.type, agent=event.agent)
        return JSONResponse({"incident": incident_id, "status": inc_pb.IncidentStatus.Name(incident.status)})


def _ignored(reason: str) -> JSONResponse:
    return JSONResponse({"ignored": reason}, status_code=202)


def pagerduty_routes(base_path: str, receiver: PagerDutyReceiver) -> list[Route]:
    """`POST {base}/v1/integrations/pagerduty/webhook`."""
    return [
        Route(
            f"{base_path}/v1/integrations/pagerduty/webhook",
            receiver.handle,
            methods=["POST"],
            name="pagerduty_webhook",
        )
    ]
