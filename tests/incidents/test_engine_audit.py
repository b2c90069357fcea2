"""The engine's side of audited acknowledge and resolve (SQLite and PostgreSQL): the change is committed
with its audit entry in the outbox, then the entry is sent; when sending raises, exactly that change is
taken back (and its entry dropped), whatever else happened to the incident in between, and nothing is
emitted. An entry whose request never sent it is sent by the outbox sweep of any engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.errors import Unavailable
from workermon_incidents import silences, windows
from workermon_incidents.audited import OUTBOX_GRACE, AuditHook
from workermon_incidents.incident import EventKind, Incident, IncidentStatus, Outcome
from workermon_incidents.rules import RuleConfig

from .conftest import Harness, make_engine

FIRES_AT_ONCE = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
BAD = {"completed": 10, "failed": 10}


# Later than any outbox entry of these tests.
FAR = datetime(2100, 1, 1, tzinfo=UTC)


def audit_down() -> Unavailable:
    return Unavailable("the audit log cannot be written; nothing was changed", reason="AUDIT_UNAVAILABLE")


def hooked(send: Callable[[Incident], Awaitable[None]]) -> AuditHook[Incident]:
    """An AuditHook whose entry stands for the incident as it was before; `send` gets that incident."""
    befores: dict[bytes, Incident] = {}

    def request(before: Incident, at: datetime) -> bytes:
        key = f"{before.id} {before.status.value} {at.isoformat()} {len(befores)}".encode()
        befores[key] = before
        return key

    async def deliver(request: bytes) -> None:
        await send(befores[request])

    return AuditHook(request, deliver)


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
        await h.engine.acknowledge(incident_id, "olivia", "on it", hooked(audit))

    assert [b.status for b in seen] == [IncidentStatus.ACTIVE]
    after = await h.engine.store.get(incident_id)
    assert after is not None
    assert after.status is IncidentStatus.ACTIVE and after.acknowledged_by is None
    assert after.acknowledge_time is None and after.notifications_sent == 1
    assert [d.kind for d in after.decisions] == [EventKind.FIRED]
    timeline = [e.kind for e in await h.engine.store.timeline(incident_id)]
    assert timeline == [EventKind.FIRED, EventKind.NOTIFIED]
    assert h.kinds() == ["FIRED"]
    assert await h.engine.store.audits_before(FAR) == []  # the undone change's entry went with it

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
        await h.engine.resolve(first.id, "adam", "fixed", hooked(audit))

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
        await h.engine.resolve(pending.incident.id, "adam", "not real", hooked(audit))

    after = await h.engine.store.get(pending.incident.id)
    assert after is not None and after.status is IncidentStatus.PENDING
    assert after.resolve_time is None and after.resolved_by is None and after.resolve_note is None
    assert [e.kind for e in await h.engine.store.timeline(pending.incident.id)] == [EventKind.PENDING]
    assert all(d.outcome is not Outcome.NOTIFIED or d.kind is not EventKind.RESOLVED for d in after.decisions)
    # Still the engine's to fire once its pending period is over.
    h.clock.advance(5 * 60)
    await h.tick("emails", **BAD)
    assert h.kinds() == ["FIRED"]


async def test_the_outbox_keeps_a_changes_entry_until_it_is_sent_by_its_request_or_the_sweep(
    harness_factory: Callable[..., Harness], db: AsyncEngine
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    (fired,) = await h.tick("emails", **BAD)
    incident_id = fired.incident.id
    gate = asyncio.Event()
    sent: list[bytes] = []

    def request(before: Incident, at: datetime) -> bytes:
        return f"acknowledge {before.id} from {before.status.value} at {at.isoformat()}".encode()

    async def stalled(entry: bytes) -> None:
        # The request stops here, after its commit: as a process that died or hangs would.
        await gate.wait()
        sent.append(entry)

    acknowledging = asyncio.create_task(
        h.engine.acknowledge(incident_id, "olivia", "on it", AuditHook(request, stalled))
    )
    # The change and its entry are committed together.
    for _ in range(500):
        current = await h.engine.store.get(incident_id)
        kept = await h.engine.store.audits_before(FAR)
        if current is not None and current.status is IncidentStatus.ACKNOWLEDGED and kept:
            break
        await asyncio.sleep(0.01)
    (_, entry), *more = kept
    assert more == [] and entry == request(fired.incident, h.engine.now())

    # Another engine (a replica, or this process restarted) sweeps: not before the grace is over...
    replica = make_engine(db, h.source, h.clock, FIRES_AT_ONCE)
    swept: list[bytes] = []

    async def send(entry: bytes) -> None:
        swept.append(entry)

    assert await replica.send_kept_audits(send) == 0
    h.clock.advance(OUTBOX_GRACE.total_seconds() + 1)

    # ...nor while the audit log is down (the entry waits for the next sweep)...
    async def down(entry: bytes) -> None:
        raise audit_down()

    with pytest.raises(Unavailable):
        await replica.send_kept_audits(down)
    assert len(await h.engine.store.audits_before(FAR)) == 1
    # ...then it is sent and dropped.
    assert await replica.send_kept_audits(send) == 1
    assert swept == [entry] and await h.engine.store.audits_before(FAR) == []

    # The stalled request goes on and sends the same entry (the audit log writes one entry per request
    # id: tests/monitor); its change stands and is emitted.
    gate.set()
    acked = await acknowledging
    assert acked.status is IncidentStatus.ACKNOWLEDGED and sent == [entry]
    assert h.kinds() == ["FIRED", "ACKNOWLEDGED"]
    assert await h.engine.store.audits_before(FAR) == []


async def test_an_expiry_or_a_deletion_whose_entry_cannot_be_written_is_put_back(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    now = h.engine.now()
    silence = await h.engine.create_silence(
        silences.Silence(
            0, silences.Matchers(queue_glob="pay*"), now, now + timedelta(hours=1), "adam", "x", now
        )
    )
    window = await h.engine.create_window(
        windows.Window(0, silences.Matchers(queue_glob="pay*"), ("MON",), 60, 120, "UTC", "adam", "y", now)
    )
    seen: list[Any] = []

    def request(subject: Any, at: datetime) -> bytes:
        seen.append(subject)
        return b"entry"

    async def down(entry: bytes) -> None:
        raise audit_down()

    with pytest.raises(Unavailable):
        await h.engine.expire_silence(silence.id, "olivia", AuditHook(request, down))
    with pytest.raises(Unavailable):
        await h.engine.delete_window(window.id, AuditHook(request, down))

    # The hooks saw the silence before and after its expiry, and the window deleted.
    (before, after), deleted = seen
    assert before == silence and after.end_time == now and after.expired_by == "olivia"
    assert deleted == window
    async with h.engine.store.engine.connect() as conn:
        assert await silences.load(conn, silence.id) == silence
        assert await windows.load(conn, window.id) == window
    assert await h.engine.store.audits_before(FAR) == []


async def test_one_sweep_sends_every_due_entry_however_many(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(FIRES_AT_ONCE)
    # More than the sweep reads at once (100): a backlog left by a long audit-log outage.
    async with h.engine.store.write() as conn:
        for n in range(150):
            await h.engine.store.add_audit(conn, f"entry {n}".encode(), h.engine.now())
    h.clock.advance(OUTBOX_GRACE.total_seconds() + 1)
    sent: list[bytes] = []

    async def send(entry: bytes) -> None:
        sent.append(entry)

    assert await h.engine.send_kept_audits(send) == 150
    assert sent == [f"entry {n}".encode() for n in range(150)]
    assert await h.engine.store.audits_before(FAR) == []
