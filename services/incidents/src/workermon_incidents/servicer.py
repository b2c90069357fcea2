"""IncidentService over gRPC: listing, timelines, acknowledge and resolve (audited), evaluate, watch."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import struct_pb2
from sqlalchemy.exc import DBAPIError

from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core import context, validation
from workermon_core.audit_client import append_audit_log
from workermon_core.errors import DomainError, InvalidArgument, Unavailable
from workermon_core.pagination import decode_token, encode_token, page_size
from workermon_core.peer import Peer

from .engine import IncidentEngine
from .incident import Incident
from .messages import event_message, incident_message, kind_value, status_name, type_name
from .models import OPEN_STATUSES
from .watch import IncidentFeed

DEFAULT_PAGE = 50
MAX_PAGE = 200


def _database_down(exc: DBAPIError) -> Unavailable:
    return Unavailable(
        f"the incident database is unavailable: {type(exc.orig).__name__}", reason="DATABASE_UNAVAILABLE"
    )


class IncidentServicer(pb_grpc.IncidentServiceServicer):
    """The RPCs; state changes go through the engine."""

    def __init__(
        self, engine: IncidentEngine, feed: IncidentFeed, monitor: Peer[mon_grpc.MonitorServiceStub]
    ) -> None:
        self.engine = engine
        self.feed = feed
        self.monitor = monitor

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIncidentsResponse:
        """Incidents newest first, filtered, one page at a time."""
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        validation.optional_queue_name(request.queue, "queue")
        validation.enum_value(request.status, pb.IncidentStatus.DESCRIPTOR, "status")
        validation.enum_value(request.type, pb.IncidentType.DESCRIPTOR, "type")
        status = status_name(request.status)
        statuses: tuple[str, ...] = (status,) if status else (OPEN_STATUSES if request.open_only else ())
        kind = type_name(request.type)
        filters: tuple[object, ...] = (statuses, kind, request.queue)
        cursor = decode_token(request.page_token, filters)
        before = int(cursor) if cursor else None
        try:
            rows = await self.engine.store.list_incidents(
                statuses=statuses, type=kind, queue=request.queue or None, before_id=before, limit=size + 1
            )
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.ListIncidentsResponse(incidents=[incident_message(i) for i in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_token(str(rows[size - 1].id), filters)
        return response

    async def GetIncident(
        self, request: pb.GetIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIncidentResponse:
        """One incident and its timeline."""
        try:
            incident = await self.engine._existing(request.incident_id)
            timeline = await self.engine.store.timeline(incident.id)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.GetIncidentResponse(
            incident=incident_message(incident), timeline=[event_message(e) for e in timeline]
        )

    async def AcknowledgeIncident(
        self, request: pb.AcknowledgeIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgeIncidentResponse:
        """ACTIVE -> ACKNOWLEDGED, written to the audit log first."""
        validation.reason(request.note, "note")
        actor = context_subject()

        async def audit(incident: Incident) -> None:
            await self._audit(mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, incident, {"note": request.note})

        try:
            incident = await self.engine.acknowledge(request.incident_id, actor, request.note, audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.AcknowledgeIncidentResponse(incident=incident_message(incident))

    async def ResolveIncident(
        self, request: pb.ResolveIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveIncidentResponse:
        """Open -> RESOLVED by hand with a note, written to the audit log first."""
        validation.reason(request.note, "note")
        actor = context_subject()

        async def audit(incident: Incident) -> None:
            await self._audit(mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, incident, {"note": request.note})

        try:
            incident = await self.engine.resolve(request.incident_id, actor, request.note, audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.ResolveIncidentResponse(incident=incident_message(incident))

    async def _audit(
        self, action: mon_pb.AuditAction.ValueType, incident: Incident, parameters: dict[str, str]
    ) -> None:
        """Write the audit entry with the service's admin token; UNAVAILABLE when it cannot be written."""
        who = context.principal.get()
        entry = mon_pb.AuditLog(
            actor=who.subject if who else "system",
            role=who.role if who else "system",
            action=action,
            entity_type="incident",
            entity_id=str(incident.id),
            queue=incident.queue or "",
            outcome=mon_pb.AUDIT_OUTCOME_SUCCEEDED,
            request_id=context.request_id.get() or "",
        )
        entry.parameters.update(parameters)
        result = struct_pb2.Struct()
        result.update({"fingerprint": incident.fingerprint, "status_before": incident.status.value})
        entry.result.CopyFrom(result)
        await append_audit_log(self.monitor.stub, entry, consequence="; nothing was changed")

    async def Evaluate(
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        """Run every rule now."""
        validation.queue_names(request.queues, "queues")
        minute = (
            validation.timestamp(request.minute_time, "minute_time", earliest=validation.EPOCH)
            if request.HasField("minute_time")
            else None
        )
        if minute is not None and minute > self.engine.now():
            raise InvalidArgument("minute_time", "must not be in the future")
        try:
            result = await self.engine.evaluate(minute, list(request.queues) or None)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.EvaluateResponse(
            queues_evaluated=result.queues,
            workers_evaluated=result.workers,
            errors=result.errors,
            duration_ms=result.duration_ms,
            changes=[
                pb.IncidentChange(kind=kind_value(c.kind), incident=incident_message(c.incident))
                for c in result.changes
            ],
        )
        response.evaluate_time.FromDatetime(result.at)
        return response

    async def WatchIncidents(
        self, request: pb.WatchIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchIncidentsResponse]:
        """Changes after `after_event_id` (or from now), live."""
        if request.after_event_id < 0:
            raise InvalidArgument("after_event_id", "must not be negative")
        try:
            async for event in self.feed.watch(request.after_event_id):
                yield pb.WatchIncidentsResponse(
                    event=event_message(event), incident=incident_message(event.incident)
                )
        except DBAPIError as exc:
            raise _database_down(exc) from None
        except DomainError:
            raise


def context_subject() -> str:
    """The caller's subject."""
    return context.current_subject()
