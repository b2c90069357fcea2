"""Incidents and timeline entries as IncidentService messages."""

from __future__ import annotations

from datetime import datetime

from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon_core.protos import set_time

from .incident import Decision, EventKind, Incident, IncidentEvent, IncidentStatus
from .rules import IncidentType, Severity
from .silences import Matchers, Silence
from .windows import Window, time_text


def type_value(kind: IncidentType) -> pb.IncidentType.ValueType:
    """The proto enum number of an incident type."""
    return pb.IncidentType.Value("INCIDENT_TYPE_" + kind.value)


def type_name(value: pb.IncidentType.ValueType) -> str | None:
    """The stored name of a proto incident type (None for UNSPECIFIED)."""
    if value == pb.INCIDENT_TYPE_UNSPECIFIED:
        return None
    return pb.IncidentType.Name(value).removeprefix("INCIDENT_TYPE_")


def status_value(status: IncidentStatus) -> pb.IncidentStatus.ValueType:
    """The proto enum number of a status."""
    return pb.IncidentStatus.Value("INCIDENT_STATUS_" + status.value)


def status_name(value: pb.IncidentStatus.ValueType) -> str | None:
    """The stored name of a proto status (None for UNSPECIFIED)."""
    if value == pb.INCIDENT_STATUS_UNSPECIFIED:
        return None
    return pb.IncidentStatus.Name(value).removeprefix("INCIDENT_STATUS_")


def severity_value(severity: Severity) -> pb.Severity.ValueType:
    """The proto enum number of a severity."""
    return pb.Severity.Value("SEVERITY_" + severity.value)


def kind_value(kind: EventKind) -> pb.IncidentEventKind.ValueType:
    """The proto enum number of a timeline entry kind."""
    return pb.IncidentEventKind.Value("INCIDENT_EVENT_KIND_" + kind.value)


def incident_message(incident: Incident) -> pb.Incident:
    """An Incident message."""
    message = pb.Incident(
        id=incident.id,
        fingerprint=incident.fingerprint,
        type=type_value(incident.type),
        severity=severity_value(incident.severity),
        status=status_value(incident.status),
        queue=incident.queue or "",
        worker_id=incident.worker_id or "",
        title=incident.title,
        description=incident.description,
        recommended_action=incident.recommended_action,
        affected_jobs=incident.affected_jobs,
        value=incident.value,
        threshold=incident.threshold,
        labels={k: v for k, v in incident.labels.items() if v},
        acknowledged_by=incident.acknowledged_by or "",
        resolved_by=incident.resolved_by or "",
        resolve_note=incident.resolve_note or "",
        resolved_automatically=incident.resolved_automatically,
        notifications_sent=incident.notifications_sent,
        notification_decisions=[decision_message(d) for d in incident.decisions],
    )
    set_time(message.pending_time, incident.pending_time)
    set_time(message.start_time, incident.start_time)
    set_time(message.last_seen_time, incident.last_seen_time)
    set_time(message.acknowledge_time, incident.acknowledge_time)
    set_time(message.resolve_time, incident.resolve_time)
    return message


def event_message(event: IncidentEvent) -> pb.IncidentEvent:
    """An IncidentEvent message (without the incident it carries)."""
    message = pb.IncidentEvent(
        id=event.id,
        incident_id=event.incident_id,
        kind=kind_value(event.kind),
        actor=event.actor,
        message=event.message,
    )
    set_time(message.event_time, event.time)
    return message


def decision_message(decision: Decision) -> pb.NotificationDecision:
    """A NotificationDecision message."""
    message = pb.NotificationDecision(
        event_id=decision.event_id,
        kind=kind_value(decision.kind),
        outcome=pb.NotificationOutcome.Value("NOTIFICATION_OUTCOME_" + decision.outcome.value),
        channels=list(decision.channels),
        silence_id=decision.silence_id or 0,
        detail=decision.detail,
        inhibited_by=decision.inhibited_by,
        maintenance_window_id=decision.window_id or 0,
        routes=list(decision.routes),
    )
    set_time(message.decide_time, decision.at)
    set_time(message.until_time, decision.until)
    return message


def matchers_message(matchers: Matchers) -> pb.SilenceMatchers:
    """A SilenceMatchers message."""
    return pb.SilenceMatchers(
        type=type_value(matchers.type) if matchers.type else pb.INCIDENT_TYPE_UNSPECIFIED,
        queue_glob=matchers.queue_glob,
        worker_id=matchers.worker_id,
        labels=dict(matchers.labels),
    )


def window_message(window: Window, now: datetime) -> pb.MaintenanceWindow:
    """A MaintenanceWindow message, `open` as of `now`."""
    message = pb.MaintenanceWindow(
        id=window.id,
        matchers=matchers_message(window.matchers),
        weekdays=list(window.weekdays),
        start_time_of_day=time_text(window.start_minute),
        end_time_of_day=time_text(window.end_minute),
        time_zone=window.time_zone,
        author=window.author,
        comment=window.comment,
        open=window.is_open(now),
    )
    set_time(message.create_time, window.create_time)
    return message


def silence_message(silence: Silence, now: datetime) -> pb.Silence:
    """A Silence message, its state as of `now`."""
    message = pb.Silence(
        id=silence.id,
        matchers=matchers_message(silence.matchers),
        author=silence.author,
        comment=silence.comment,
        state=pb.SilenceState.Value("SILENCE_STATE_" + silence.state(now).value),
        expired_by=silence.expired_by or "",
    )
    set_time(message.start_time, silence.start_time)
    set_time(message.end_time, silence.end_time)
    set_time(message.create_time, silence.create_time)
    return message
