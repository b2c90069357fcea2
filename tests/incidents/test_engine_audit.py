"""The engine's side of audited acknowledge and resolve (SQLite and PostgreSQL): the change is committed,
then audited; when the audit raises, exactly that change is taken back, whatever else happened to the
incident in between, and nothing is emitted.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.errors import Unavailable
from workermon_incidents.incident import EventKind, Incident, IncidentStatus, Outcome
from workermon_incidents.rules import RuleConfig

from .conftest import Harness, make_engine

FIRES_AT_ONCE = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
BAD = {"completed": 10, "failed": 10}


def audit_down() -> Unavailable:
    return Unavailable("the audit log cannot be written; nothing was changed", reason="AUDIT_UNAVAILABLE")


async def test_an_undone_acknowledge_keeps_a_notification_recorded_meanwhile(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    (fired,) = await h.tick("emails", **BAD)
    incident_id = fired.incident.id
    seen: list[Incident] = []

    async def audit(before: Incident) -> None:
        seen.append(before)
        # The change is committed when the audit runs; a delivery of the FIRED lands meanwhile.
        current = await h.engine.store.get(incident_id)
        assert current is not None and current.status is IncidentStatus.ACKNOWLEDGED
        await h.engine.record_notified(incident_id, "ops")
        raise audit_down()

    with pytest.raises(Unavailable):
        await h.engine.acknowledge(incident_id, "olivia", "on it", audit)

    assert [b.status for b in seen] == [IncidentStatus.ACTIVE]
    after = await h.engine.store.get(incident_id)
    assert after is not None
    assert after.status is IncidentStatus.ACTIVE and after.acknowledged_by is None
    assert after.acknowledge_time is None and after.notifications_sent == 1
    assert [d.kind for d in after.decisions] == [EventKind.FIRED]
    timeline = [e.kind for e in await h.engine.store.timeline(incident_id)]
    assert timeline == [EventKind.FIRED, EventKind.NOTIFIED]
    assert h.kinds() == ["FIRED"]

    # Acknowledged for real once the audit is written, notified then.
    await h.engine.acknowledge(incident_id, "olivia", "on it", None)
    assert h.kinds() == ["FIRED", "ACKNOWLEDGED"]


async def test_an_undone_resolve_never_reopens_over_a_newer_incident(
    harness_factory: Callable[..., Harness], db: AsyncEngine
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    (fired,) = await h.tick("emails", **BAD)
    first = fired.incident
    # Another replica's engine on the same database, evaluating while the audit is under way.
    replica = make_engine(db, h.source, h.clock, FIRES_AT_ONCE)

    async def audit(before: Incident) -> None:
        changes = (await replica.evaluate()).changes
        assert [(c.kind, c.incident.fingerprint) for c in changes] == [(EventKind.FIRED, first.fingerprint)]
        raise audit_down()

    with pytest.raises(Unavailable):
        await h.engine.resolve(first.id, "adam", "fixed", audit)

    # The resolution's entry and decision went; the incident stays resolved, since reopening it would
    # make two open incidents of one fingerprint.
    after = await h.engine.store.get(first.id)
    assert after is not None and after.status is IncidentStatus.RESOLVED
    assert all(d.kind is not EventKind.RESOLVED for d in after.decisions)
    assert [e.kind for e in await h.engine.store.timeline(first.id)] == [EventKind.FIRED]
    async with db.connect() as conn:
        newer = (await h.engine.store.open_incidents(conn))[first.fingerprint]
    assert newer.id != first.id and newer.status is IncidentStatus.ACTIVE
    assert h.kinds() == ["FIRED"]


async def test_an_undone_resolve_of_a_pending_incident_restores_it(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=5))
    (pending,) = await h.tick("emails", **BAD)
    assert pending.incident.status is IncidentStatus.PENDING

    async def audit(before: Incident) -> None:
        raise audit_down()

    with pytest.raises(Unavailable):
        await h.engine.resolve(pending.incident.id, "adam", "not real", audit)

    after = await h.engine.store.get(pending.incident.id)
    assert after is not None and after.status is IncidentStatus.PENDING
    assert after.resolve_time is None and after.resolved_by is None and after.resolve_note is None
    assert [e.kind for e in await h.engine.store.timeline(pending.incident.id)] == [EventKind.PENDING]
    assert all(d.outcome is not Outcome.NOTIFIED or d.kind is not EventKind.RESOLVED for d in after.decisions)
    # Still the engine's to fire once its pending period is over.
    h.clock.advance(5 * 60)
    await h.tick("emails", **BAD)
    assert h.kinds() == ["FIRED"]
