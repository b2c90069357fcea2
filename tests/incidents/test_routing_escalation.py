"""Escalation and routed decisions on the engine with the real notifier: a hand-moved clock for both,
real HTTP receivers, the taskiq receiver on the real Redis, the incident database on SQLite and
PostgreSQL. A fired incident left unacknowledged is escalated once per step; acknowledging stops it.
"""

# The notifier fixtures are test_notify_delivery's, imported by name: the arguments naming them are
# how pytest hands them over, not redefinitions.
# ruff: noqa: F811

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.incidents.test_notify_delivery import (  # noqa: F401 - fixtures used by name
    channels,
    hook,
    make_notifier,
    notify_engine,
    settled,
    until,
)
from tests.support.webhooks import HttpReceiver
from workermon_incidents import silences
from workermon_incidents.incident import EventKind, Incident, Outcome
from workermon_incidents.messages import decision_message
from workermon_incidents.notify.models import DeliveryStatus
from workermon_incidents.notify.tasks import Notifier
from workermon_incidents.routing import EscalationStep, Route
from workermon_incidents.rules import RuleConfig

from .conftest import Harness, make_engine

RULES = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0, incident_quiet_minutes=3)
BAD = {"completed": 10, "failed": 10}
ROUTES = [
    Route(
        "payments",
        ("slack",),
        queue_glob="payments*",
        group_wait_seconds=0,
        escalations=(EscalationStep(15, ("pager",)), EscalationStep(45, ("boss",))),
    ),
    Route("default", ("ops",), group_wait_seconds=0),
]


@dataclass
class Wired:
    """An engine and a notifier on one hand-moved clock, with a receiver per channel."""

    h: Harness
    notifier: Notifier
    receivers: dict[str, HttpReceiver]

    async def tick(self, minutes: int = 1) -> None:
        """`minutes` bad minutes of the payments queue, evaluated one by one; then every delivery made."""
        for _ in range(minutes):
            await self.h.tick("payments", **BAD)
        await self.settle()

    async def settle(self) -> None:
        """Wait until every delivery recorded so far has reached its final status."""
        for incident in await self.h.engine.store.list_incidents(limit=100):
            for delivery in await self.notifier.deliveries(incident.id):
                assert await settled(self.notifier, delivery.id) is DeliveryStatus.DELIVERED

    def reasons(self, channel: str) -> list[str]:
        return [r.body["reason"] for r in self.receivers[channel].accepted]

    async def incident(self) -> Incident:
        (incident,) = await self.h.engine.store.list_incidents(limit=10)
        return incident

    async def kinds(self) -> list[EventKind]:
        return [e.kind for e in await self.h.engine.store.timeline((await self.incident()).id)]


async def wire(
    harness_factory: Any,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
    **config: Any,
) -> Wired:
    h: Harness = harness_factory(RULES, **config)
    receivers = {name: await http_server() for name in ("slack", "pager", "boss", "ops")}
    configured = channels(*(hook(n, r.url, send_acknowledged=True) for n, r in receivers.items()))

    def clock() -> datetime:
        return datetime.fromtimestamp(h.clock(), tz=UTC)

    notifier = await make_notifier(
        configured, clock=clock, routes=ROUTES, on_delivered=h.engine.record_notified
    )
    h.engine.on_transition(notifier.handle)
    h.engine.route_with(notifier.route)
    h.engine.escalate_with(lambda: notifier.routes)
    return Wired(h, notifier, receivers)


async def test_an_escalation_step_fires_once_after_its_minutes_and_reminders_follow_it(
    harness_factory: Any,
    db: AsyncEngine,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    w = await wire(harness_factory, http_server, make_notifier, notify_repeat_hours=0.5)
    await w.tick()  # fires at t0
    assert w.reasons("slack") == ["fired"] and w.receivers["ops"].requests == []
    fired = await w.incident()
    (decision,) = fired.decisions
    assert decision.routes == ("payments",) and decision.channels == ("slack",)
    shown = decision_message(decision)  # as GetIncident returns it
    assert list(shown.routes) == ["payments"] and list(shown.channels) == ["slack"]

    await w.tick(14)  # t0 + 14 min: not yet
    assert EventKind.ESCALATED not in await w.kinds() and w.receivers["pager"].requests == []
    await w.tick()  # t0 + 15 min
    assert w.reasons("pager") == ["escalated"]
    escalated = await w.incident()
    (step,) = escalated.escalations
    assert (step.route, step.after_minutes, step.channels) == ("payments", 15, ("pager",))
    last = escalated.decisions[-1]
    assert (last.kind, last.outcome, last.routes, last.channels) == (
        EventKind.ESCALATED,
        Outcome.NOTIFIED,
        ("payments",),
        ("pager",),
    )
    timeline = await w.h.engine.store.timeline(escalated.id)
    (entry,) = [e for e in timeline if e.kind is EventKind.ESCALATED]
    assert entry.message == "unacknowledged for 15 min: escalated to pager" and entry.id == step.event_id
    body = w.receivers["pager"].accepted[0].body
    assert body["status"] == "firing" and body["incidentId"] == escalated.id

    # Another replica evaluating the same minute takes no step again.
    replica = make_engine(db, w.h.source, w.h.clock, RULES, notify_repeat_hours=0.5)
    replica.escalate_with(lambda: ROUTES)
    await replica.evaluate()
    await w.tick(5)
    assert (await w.kinds()).count(EventKind.ESCALATED) == 1 and w.reasons("pager") == ["escalated"]

    # The reminder (every 30 min) goes to the route's channel and to the step taken.
    await w.tick(10)  # t0 + 30 min
    assert w.reasons("slack") == ["fired", "reminder"]
    assert w.reasons("pager") == ["escalated", "reminder"]
    assert w.receivers["boss"].requests == []

    # Acknowledged: the route's channel and the escalated one hear of it; no further step (45 min).
    await w.h.engine.acknowledge(escalated.id, "alice")
    await w.settle()
    assert w.reasons("pager") == ["escalated", "reminder", "acknowledged"]
    assert w.reasons("slack") == ["fired", "reminder", "acknowledged"]
    await w.tick(20)  # t0 + 50 min
    assert w.receivers["boss"].requests == []
    assert (await w.kinds()).count(EventKind.ESCALATED) == 1

    # Every delivery arrived: one NOTIFIED entry each on the timeline (recorded just after the row's
    # DELIVERED status).
    async def six_notified() -> bool:
        return (await w.kinds()).count(EventKind.NOTIFIED) == 6

    await until(six_notified)


async def test_acknowledging_before_the_step_stops_the_escalation(
    harness_factory: Any,
    db: AsyncEngine,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    w = await wire(harness_factory, http_server, make_notifier)
    await w.tick()
    await w.tick(5)
    await w.h.engine.acknowledge((await w.incident()).id, "bob")
    await w.tick(20)  # well past the 15 min step
    assert EventKind.ESCALATED not in await w.kinds()
    assert w.receivers["pager"].requests == []
    assert w.reasons("slack") == ["fired", "acknowledged"]
    assert (await w.incident()).escalations == ()


async def test_two_steps_due_at_once_each_fire_once_with_their_own_channels(
    harness_factory: Any,
    db: AsyncEngine,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    w = await wire(harness_factory, http_server, make_notifier)
    await w.tick()
    # The service was down for an hour: both steps are due at the first evaluation after it.
    w.h.clock.advance(59 * 60)
    await w.tick()
    kinds = await w.kinds()
    assert kinds.count(EventKind.ESCALATED) == 2
    assert w.reasons("pager") == ["escalated"] and w.reasons("boss") == ["escalated"]
    incident = await w.incident()
    steps = [(s.after_minutes, s.channels) for s in incident.escalations]
    assert steps == [(15, ("pager",)), (45, ("boss",))]


async def test_a_silence_holds_the_escalation_back_like_any_notification(
    harness_factory: Any,
    db: AsyncEngine,
    http_server: Callable[..., Awaitable[HttpReceiver]],
    make_notifier: Callable[..., Awaitable[Notifier]],
) -> None:
    w = await wire(harness_factory, http_server, make_notifier)
    await w.tick()
    now = w.h.engine.now()
    await w.h.engine.create_silence(
        silences.Silence(
            0,
            silences.Matchers(queue_glob="payments").validate("silence.matchers"),
            now,
            now + timedelta(hours=2),
            "olivia",
            "payments maintenance",
            now,
        )
    )
    await w.tick(16)
    incident = await w.incident()
    assert len(incident.escalations) == 1  # the step is taken (once), its notification is not sent
    last = incident.decisions[-1]
    assert last.kind is EventKind.ESCALATED and last.outcome is Outcome.SILENCED
    assert w.receivers["pager"].requests == []
