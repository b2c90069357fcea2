"""What notifications need from an incident transition, and the snapshot each delivery carries.

The incident engine emits `Transition(incident, kind, seq, at)` to its `on_transition` callbacks.
Notifications depend only on the shape described by `TransitionLike` and `IncidentLike` (read-only
properties, so the engine's own classes match structurally, whatever else they carry), never on
the engine's classes themselves.

A delivery is sent by a task that may run in another process, after a restart, or long after the
incident changed again; it must describe the incident as it was at the transition. So `handle`
turns the transition into a `NotifyEvent`, a plain snapshot stored as JSON with each delivery row,
and everything that renders a message reads that snapshot only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Protocol


class IncidentLike(Protocol):
    """The incident attributes notifications read (the engine's incident class matches it)."""

    @property
    def id(self) -> int:
        """Identifier."""

    @property
    def fingerprint(self) -> str:
        """Stable identity of the condition (rule type + subject), as in Alertmanager."""

    @property
    def type(self) -> object:
        """Rule type, e.g. FAILURE_RATE (an enum's name or a string)."""

    @property
    def severity(self) -> object:
        """Severity, e.g. CRITICAL (an enum's name or a string)."""

    @property
    def status(self) -> object:
        """Lifecycle status, e.g. ACTIVE, ACKNOWLEDGED, RESOLVED."""

    @property
    def queue(self) -> str | None:
        """The queue concerned, if any."""

    @property
    def worker_id(self) -> str | None:
        """The worker concerned, if any."""

    @property
    def title(self) -> str:
        """One-line summary."""

    @property
    def description(self) -> str:
        """What was observed."""

    @property
    def recommended_action(self) -> str:
        """What an operator should do."""

    @property
    def labels(self) -> Mapping[str, str]:
        """Extra labels (added to the webhook's labels)."""

    @property
    def start_time(self) -> datetime | None:
        """When the incident became ACTIVE (None while pending)."""

    @property
    def resolve_time(self) -> datetime | None:
        """When it resolved, if it has."""


class TransitionLike(Protocol):
    """One lifecycle transition as the engine emits it."""

    @property
    def incident(self) -> IncidentLike:
        """The incident after the transition."""

    @property
    def kind(self) -> object:
        """FIRED, RESOLVED, ACKNOWLEDGED or REMINDER (an enum's name or a string)."""

    @property
    def seq(self) -> int:
        """Unique, increasing event id: with the channel name, the identity of a delivery."""

    @property
    def at(self) -> datetime:
        """When the transition happened."""


class TransitionKind(StrEnum):
    """The transitions notifications know about (their names, as the engine spells them)."""

    FIRED = "FIRED"
    RESOLVED = "RESOLVED"
    ACKNOWLEDGED = "ACKNOWLEDGED"
    REMINDER = "REMINDER"
    # Unacknowledged past one of its route's escalation steps: that step's channels are told.
    ESCALATED = "ESCALATED"

    @property
    def reason(self) -> str:
        """The `reason` field of the webhook payload: fired, resolved, acknowledged, reminder, escalated."""
        return self.value.lower()


def name_of(value: object) -> str:
    """An enum member's name, or the value as text (how enum-or-string attributes are shown)."""
    if isinstance(value, Enum):
        return value.name
    return "" if value is None else str(value)


def kind_of(transition: TransitionLike) -> TransitionKind | None:
    """The transition's kind, or None for a kind notifications do not handle."""
    try:
        return TransitionKind(name_of(transition.kind).upper())
    except ValueError:
        return None


def utc(moment: datetime) -> datetime:
    """`moment` as aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def rfc3339(moment: datetime | None) -> str:
    """`2031-03-04T10:30:00Z` (UTC, seconds, as Alertmanager writes it); empty for None."""
    if moment is None:
        return ""
    text = utc(moment).isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, kw_only=True, slots=True)
class NotifyEvent:
    """An incident as it stood at one transition: everything a message is rendered from."""

    seq: int
    kind: TransitionKind
    at: datetime
    incident_id: int
    fingerprint: str
    type: str
    severity: str
    status: str
    queue: str | None
    worker_id: str | None
    title: str
    description: str
    recommended_action: str
    labels: dict[str, str] = field(default_factory=dict)
    started_at: datetime | None = None
    resolved_at: datetime | None = None
    # The measurement behind the incident (None in snapshots stored before these were kept).
    value: float | None = None
    threshold: float | None = None
    affected_jobs: int | None = None

    @property
    def reason(self) -> str:
        """fired, resolved, acknowledged or reminder."""
        return self.kind.reason

    @property
    def resolved(self) -> bool:
        """True for the resolve notification (Alertmanager's status "resolved")."""
        return self.kind is TransitionKind.RESOLVED

    def to_json(self) -> str:
        """The snapshot as stored with the delivery."""
        data: dict[str, Any] = asdict(self)
        for key in ("at", "started_at", "resolved_at"):
            value = data[key]
            data[key] = None if value is None else utc(value).isoformat()
        data["kind"] = self.kind.value
        return json.dumps(data, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> NotifyEvent:
        """The snapshot back from its stored form."""
        data: dict[str, Any] = json.loads(text)
        for key in ("at", "started_at", "resolved_at"):
            if data.get(key) is not None:
                data[key] = datetime.fromisoformat(data[key])
        data["kind"] = TransitionKind(data["kind"])
        return cls(**data)


def snapshot(transition: TransitionLike, kind: TransitionKind) -> NotifyEvent:
    """Copy what messages need out of the transition (and its incident) as it is now."""
    incident = transition.incident
    return NotifyEvent(
        seq=int(transition.seq),
        kind=kind,
        at=utc(transition.at),
        incident_id=int(incident.id),
        fingerprint=str(incident.fingerprint),
        type=name_of(incident.type),
        severity=name_of(incident.severity),
        status=name_of(incident.status),
        queue=incident.queue or None,
        worker_id=incident.worker_id or None,
        title=incident.title,
        description=incident.description,
        recommended_action=incident.recommended_action,
        labels={str(k): str(v) for k, v in (incident.labels or {}).items()},
        started_at=utc(incident.start_time) if incident.start_time else None,
        resolved_at=utc(incident.resolve_time) if incident.resolve_time else None,
        # Not part of IncidentLike: other transition sources may not measure anything.
        value=_number(getattr(incident, "value", None)),
        threshold=_number(getattr(incident, "threshold", None)),
        affected_jobs=_whole(getattr(incident, "affected_jobs", None)),
    )


def _number(value: object) -> float | None:
    """`value` as a float when it is a number, else None."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _whole(value: object) -> int | None:
    """`value` when it is a whole number, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
