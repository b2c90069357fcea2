"""Incidents and timeline entries as immutable values (what the store reads and the engine emits)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .rules import IncidentType, Severity

SYSTEM_ACTOR = "system"


class IncidentStatus(StrEnum):
    """Where an incident is in its lifecycle (stored as its name)."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"

    @property
    def is_open(self) -> bool:
        """Open incidents count against the one-per-fingerprint limit."""
        return self is not IncidentStatus.RESOLVED


class EventKind(StrEnum):
    """What happened to an incident (a timeline entry's kind)."""

    PENDING = "PENDING"
    FIRED = "FIRED"
    NOTIFIED = "NOTIFIED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    RESOLVED = "RESOLVED"
    UPDATED = "UPDATED"
    CLEARED = "CLEARED"
    REMINDER = "REMINDER"
    # A fired incident stayed unacknowledged long enough for one of its route's escalation steps.
    ESCALATED = "ESCALATED"


class Outcome(StrEnum):
    """Whether a notifiable transition went to the channels."""

    NOTIFIED = "NOTIFIED"
    SILENCED = "SILENCED"
    INHIBITED = "INHIBITED"
    MAINTENANCE = "MAINTENANCE"


@dataclass(frozen=True, slots=True)
class Decision:
    """What was decided about notifying one transition (`event_id` is its timeline entry)."""

    event_id: int
    kind: EventKind
    outcome: Outcome
    at: datetime
    channels: tuple[str, ...] = ()
    silence_id: int | None = None
    detail: str = ""
    until: datetime | None = None
    inhibited_by: str = ""
    window_id: int | None = None
    # The notification routes that took the transition (empty when no routes are configured).
    routes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The decision as stored (JSON-ready)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "outcome": self.outcome.value,
            "at": self.at.isoformat(),
            "channels": list(self.channels),
            "silence_id": self.silence_id,
            "detail": self.detail,
            "until": self.until.isoformat() if self.until else None,
            "inhibited_by": self.inhibited_by,
            "window_id": self.window_id,
            "routes": list(self.routes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """The inverse of to_dict."""
        return cls(
            event_id=int(data["event_id"]),
            kind=EventKind(data["kind"]),
            outcome=Outcome(data["outcome"]),
            at=datetime.fromisoformat(data["at"]),
            channels=tuple(data.get("channels") or ()),
            silence_id=data.get("silence_id"),
            detail=data.get("detail") or "",
            until=datetime.fromisoformat(data["until"]) if data.get("until") else None,
            inhibited_by=data.get("inhibited_by") or "",
            window_id=data.get("window_id"),
            routes=tuple(data.get("routes") or ()),
        )


@dataclass(frozen=True, slots=True)
class Escalation:
    """One escalation step taken: which route's step (by its minutes), its channels, its timeline entry."""

    route: str
    after_minutes: int
    channels: tuple[str, ...]
    event_id: int

    @property
    def key(self) -> str:
        """The step's identity within the incident (a step is taken once)."""
        return f"{self.route}/{self.after_minutes}"

    def to_dict(self) -> dict[str, Any]:
        """The step as stored (JSON-ready)."""
        return {
            "route": self.route,
            "after_minutes": self.after_minutes,
            "channels": list(self.channels),
            "event_id": self.event_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Escalation:
        """The inverse of to_dict."""
        return cls(
            route=str(data["route"]),
            after_minutes=int(data["after_minutes"]),
            channels=tuple(data.get("channels") or ()),
            event_id=int(data["event_id"]),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident. Times are aware UTC; absent ones are None."""

    id: int
    fingerprint: str
    type: IncidentType
    severity: Severity
    status: IncidentStatus
    queue: str | None
    worker_id: str | None
    title: str
    description: str
    recommended_action: str
    affected_jobs: int
    value: float
    threshold: float
    labels: Mapping[str, str]
    pending_time: datetime
    start_time: datetime | None
    last_seen_time: datetime
    clear_since: datetime | None = None
    acknowledge_time: datetime | None = None
    resolve_time: datetime | None = None
    last_notice_time: datetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    resolve_note: str | None = None
    resolved_automatically: bool = False
    notifications_sent: int = 0
    version: int = 0
    decisions: tuple[Decision, ...] = ()
    held_event_id: int | None = None
    # The escalation steps taken while this incident stayed unacknowledged, in order.
    escalations: tuple[Escalation, ...] = ()

    @property
    def escalated_channels(self) -> tuple[str, ...]:
        """The channels of every escalation step taken (reminders and the ack/resolve go there too)."""
        seen: dict[str, None] = {}
        for step in self.escalations:
            seen.update(dict.fromkeys(step.channels))
        return tuple(seen)

    def to_json(self) -> str:
        """The incident as JSON (kept with each timeline entry)."""
        data = asdict(self)
        data["labels"] = dict(self.labels)
        data["decisions"] = [d.to_dict() for d in self.decisions]
        data["escalations"] = [e.to_dict() for e in self.escalations]
        return json.dumps(data, default=_encode, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Incident:
        """The inverse of to_json."""
        data: dict[str, Any] = json.loads(text)
        for name in _TIME_FIELDS:
            if data.get(name):
                data[name] = datetime.fromisoformat(data[name])
        data["type"] = IncidentType(data["type"])
        data["severity"] = Severity(data["severity"])
        data["status"] = IncidentStatus(data["status"])
        data["decisions"] = tuple(Decision.from_dict(d) for d in data.get("decisions") or ())
        data["escalations"] = tuple(Escalation.from_dict(e) for e in data.get("escalations") or ())
        return cls(**data)


_TIME_FIELDS = (
    "pending_time",
    "start_time",
    "last_seen_time",
    "clear_since",
    "acknowledge_time",
    "resolve_time",
    "last_notice_time",
)


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One timeline entry; `incident` is the incident right after it."""

    id: int
    incident_id: int
    kind: EventKind
    time: datetime
    actor: str
    message: str
    incident: Incident = field(compare=False)
