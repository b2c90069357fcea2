"""The transitions to notify again after a crash: those committed and decided NOTIFIED whose callback
may never have run (the process died between the commit and the notifier's `handle`).

The decision is the incident's own record (`Incident.decisions`, written in the transition's
transaction): a transition silenced, inhibited or held by a maintenance window is not replayed, and
one held back and later released is replayed as the FIRED the release emitted. The notifier's delivery
key (transition_seq, channel) makes replaying a transition already handled create nothing. The window
is the decision's: a hold released within it is replayed however old the entry it was held under.
"""

from __future__ import annotations

from datetime import datetime

from .incident import EventKind, Outcome
from .store import IncidentStore
from .transitions import Transition

# The timeline kinds a notification may follow (ESCALATED too, once the engine records it).
NOTIFIABLE_KINDS: tuple[EventKind, ...] = tuple(
    kind for kind in EventKind if kind.value in ("FIRED", "REMINDER", "ACKNOWLEDGED", "RESOLVED", "ESCALATED")
)


async def notified_since(store: IncidentStore, since: datetime) -> list[Transition]:
    """Every transition at or after `since` decided NOTIFIED, oldest first, as the engine emitted it."""
    events = await store.events_since(since, NOTIFIABLE_KINDS)
    # A hold released in the window notifies under its held entry, which may be older than the window.
    found = {e.id for e in events}
    released = {
        d.event_id
        for incident in await store.noticed_since(since)
        for d in incident.decisions
        if d.outcome is Outcome.NOTIFIED and d.at >= since and d.event_id not in found
    }
    if released:
        events = sorted([*events, *await store.events_by_id(sorted(released))], key=lambda e: e.id)
    current = await store.incidents_by_id(sorted({e.incident_id for e in events}))
    transitions: list[Transition] = []
    for event in events:
        incident = current.get(event.incident_id)
        if incident is None:
            continue
        decision = next(
            (d for d in incident.decisions if d.event_id == event.id and d.outcome is Outcome.NOTIFIED),
            None,
        )
        if decision is None:
            continue
        # The incident as it was at the transition (the entry's copy), under the kind the decision
        # notified (a released hold is a FIRED under the held entry's id, at the release's time).
        at = max(event.time, decision.at)
        transitions.append(Transition(event.incident, decision.kind.value, event.id, at))
    return transitions
