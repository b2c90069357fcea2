"""The lifecycle transitions the notification part consumes.

Every transition that may deserve a notification is handed, after it is committed, to each callback
registered with `IncidentEngine.on_transition(callback)` as a `Transition`:

- `incident`: the `workermon_incidents.incident.Incident` right after the transition (status, severity,
  title, description, recommended_action, queue or worker_id, value and threshold, labels, times,
  acknowledged_by / resolved_by / resolve_note, notifications_sent so far).
- `kind`: one of `FIRED` (became ACTIVE after its pending period), `RESOLVED` (by itself after the quiet
  period, `incident.resolved_automatically` True, or by an admin with `incident.resolve_note`),
  `ACKNOWLEDGED` (an operator took it; stop reminding), `REMINDER` (still ACTIVE and unacknowledged
  `notify_repeat_hours` after it fired or after the last reminder), `ESCALATED` (still ACTIVE and
  unacknowledged past one of its route's escalation steps; `incident.escalations` names the step by
  this transition's `seq`).
- `seq`: the id of the `incident_events` row recording the transition. Ids increase across all
  incidents, so a notifier can remember the last one it handled and find missed transitions in the
  timeline (kinds FIRED, RESOLVED, ACKNOWLEDGED, REMINDER) after a restart.
- `at`: when the transition happened (aware UTC, the engine's clock).

Each transition is emitted once, by the replica that committed it. Callbacks run one after another
in registration order; one that raises is logged and skipped, and never breaks evaluation or the
RPC that caused the transition. A pending incident that clears is never emitted (nobody was told).
A notifier records a delivery with `IncidentEngine.record_notified(incident_id, channel)`, which
adds a NOTIFIED timeline entry and counts it in `incident.notifications_sent`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from .incident import Incident

FIRED: Final = "FIRED"
RESOLVED: Final = "RESOLVED"
ACKNOWLEDGED: Final = "ACKNOWLEDGED"
REMINDER: Final = "REMINDER"
ESCALATED: Final = "ESCALATED"
KINDS: Final = (FIRED, RESOLVED, ACKNOWLEDGED, REMINDER, ESCALATED)


@dataclass(frozen=True, slots=True)
class Transition:
    """One committed lifecycle transition (see the module docstring for each field)."""

    incident: Incident
    kind: str
    seq: int
    at: datetime


TransitionCallback = Callable[[Transition], Awaitable[None]]
"""An async function the engine calls with each transition."""
