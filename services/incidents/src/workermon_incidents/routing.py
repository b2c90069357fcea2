"""Notification routes: which channels an incident goes to, how long its route groups, how it escalates.

Routes are tried in order; the first that matches takes the incident unless it says `continue_matching`,
in which case the next matching ones take it too. When routes are configured the last one matches
everything (the default route); with none configured every channel gets every incident.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from .rules import WORKER_LABEL_PREFIX, IncidentType, Severity

DEFAULT_GROUP_WAIT_SECONDS = 30
MAX_GROUP_WAIT_SECONDS = 3600
MAX_ESCALATION_MINUTES = 7 * 24 * 60


class Routable(Protocol):
    """What routes match on (the engine's Incident and the notifier's transitions both have it)."""

    @property
    def type(self) -> object:
        """The rule type (an IncidentType, or its name)."""

    @property
    def severity(self) -> object:
        """The severity (a Severity, or its name)."""

    @property
    def queue(self) -> str | None:
        """The queue concerned, if any."""

    @property
    def labels(self) -> Mapping[str, str]:
        """The incident's labels (a worker's own labels under `worker.`)."""


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """Channels notified once a fired incident has stayed unacknowledged `after_minutes`."""

    after_minutes: int
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Route:
    """One route: its matchers (unset: any), its channels, its group wait and its escalation steps."""

    name: str
    channels: tuple[str, ...] = ()
    types: frozenset[IncidentType] = frozenset()
    severities: frozenset[Severity] = frozenset()
    queue_glob: str = ""
    worker_labels: Mapping[str, str] = field(default_factory=dict)
    continue_matching: bool = False
    group_wait_seconds: int = DEFAULT_GROUP_WAIT_SECONDS
    escalations: tuple[EscalationStep, ...] = ()

    @property
    def matches_everything(self) -> bool:
        """True for a route without matchers (the default route)."""
        return not (self.types or self.severities or self.queue_glob or self.worker_labels)

    def matches(self, incident: Routable) -> bool:
        """True when every matcher that is set matches the incident."""
        if self.types and incident.type not in self.types:
            return False
        if self.severities and incident.severity not in self.severities:
            return False
        if self.queue_glob and not fnmatch.fnmatchcase(incident.queue or "", self.queue_glob):
            return False
        labels = incident.labels or {}
        wanted = self.worker_labels.items()
        return all(labels.get(WORKER_LABEL_PREFIX + key) == value for key, value in wanted)


def select(routes: Sequence[Route], incident: Routable) -> list[Route]:
    """The routes that take `incident`, in order: the first match, and the next while each says continue."""
    taken: list[Route] = []
    for route in routes:
        if not route.matches(incident):
            continue
        taken.append(route)
        if not route.continue_matching:
            break
    return taken


def channels_of(routes: Iterable[Route]) -> tuple[str, ...]:
    """The union of the routes' channels, in route order, each once."""
    seen: dict[str, None] = {}
    for route in routes:
        seen.update(dict.fromkeys(route.channels))
    return tuple(seen)


def group_route(routes: Sequence[Route], channel: str) -> Route | None:
    """The first of the routes that sends to `channel`: the one whose group a FIRED notification joins."""
    return next((route for route in routes if channel in route.channels), None)


def due_steps(
    routes: Sequence[Route], fired_at: datetime, now: datetime, taken: Iterable[str]
) -> list[tuple[Route, EscalationStep]]:
    """The escalation steps of `routes` due at `now` for an incident fired at `fired_at`, oldest
    first, leaving out the steps already `taken` (keys "route/after_minutes")."""
    done = set(taken)
    due: list[tuple[Route, EscalationStep]] = []
    for route in routes:
        for step in route.escalations:
            if f"{route.name}/{step.after_minutes}" in done:
                continue
            if now >= fired_at + timedelta(minutes=step.after_minutes):
                due.append((route, step))
    due.sort(key=lambda pair: pair[1].after_minutes)
    return due
