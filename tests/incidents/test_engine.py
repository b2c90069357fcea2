"""The incident lifecycle on a hand-moved clock, on SQLite and PostgreSQL: pending, keep-firing,
quiet periods, dedup, reminders and acknowledgement, missing data, staleness, racing replicas."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import FakeClock
from workermon_core.errors import FailedPrecondition, InvalidArgument
from workermon_incidents.incident import EventKind, IncidentStatus
from workermon_incidents.models import incidents
from workermon_incidents.rules import RuleConfig
from workermon_incidents.transitions import Transition

from .conftest import START, FakeSource, Harness, make_engine

FAST = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=2, incident_quiet_minutes=3)
BAD = {"completed": 10, "failed": 10}
GOOD = {"completed": 20, "failed": 0}


async def all_incidents(h: Harness) -> list[Any]:
    return await h.engine.store.list_incidents(limit=100)


async def test_pending_that_clears_leaves_nothing(harness_factory: Any) -> None:
    h: Harness = harness_factory(FAST)
    changes = await h.tick("emails", **BAD)
    assert [c.kind for c in changes] == [EventKind.PENDING]
    [pending] = await all_incidents(h)
    assert pending.status is IncidentStatus.PENDING
    await h.tick("emails", **GOOD)
    assert await all_incidents(h) == []
    assert h.transitions == []  # nobody was told


async def test_fires_after_pending_keeps_firing_resolves_after_quiet_and_fires_anew(
    harness_factory: Any,
) -> None:
    h: Harness = harness_factory(FAST)
    await h.tick("emails", **BAD)  # pending at t
    await h.tick("emails", **BAD)  # t+1: not yet 2 minutes
    assert h.kinds() == []
    await h.tick("emails", **BAD)  # t+2: fires
    assert h.kinds() == ["FIRED"]
    first = h.transitions[0].incident
    assert first.status is IncidentStatus.ACTIVE and first.type.value == "HIGH_FAILURE_RATE"
    assert first.affected_jobs == 10 and first.value == 0.5 and first.threshold == 0.05
    assert h.transitions[0].seq > 0 and h.transitions[0].at == first.start_time

    # One good minute, then bad again: the same incident, never resolved (keep-firing).
    await h.tick("emails", **GOOD)
    await h.tick("emails", **BAD)
    for _ in range(3):
        await h.tick("emails", **GOOD)
    assert h.kinds() == ["FIRED"]
    assert [i.status for i in await all_incidents(h)] == [IncidentStatus.ACTIVE]
    await h.tick("emails", **GOOD)  # clear for 3 minutes: resolved
    assert h.kinds() == ["FIRED", "RESOLVED"]
    resolved = h.transitions[-1].incident
    assert resolved.id == first.id and resolved.resolved_automatically and resolved.resolved_by == "system"

    # Firing again after resolution is a new incident.
    for _ in range(3):
        await h.tick("emails", **BAD)
    assert h.kinds() == ["FIRED", "RESOLVED", "FIRED"]
    rows = await all_incidents(h)
    assert len(rows) == 2 and rows[0].id != first.id and rows[0].fingerprint == first.fingerprint
    assert [r.status for r in rows] == [IncidentStatus.ACTIVE, IncidentStatus.RESOLVED]
    kinds = [e.kind for e in await h.engine.store.timeline(first.id)]
    assert kinds == [EventKind.PENDING, EventKind.FIRED, EventKind.RESOLVED]


async def test_repeated_evaluation_updates_one_incident(harness_factory: Any) -> None:
    h: Harness = harness_factory(RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0))
    await h.tick("emails", **BAD)
    for failed in (12, 14, 16):
        await h.tick("emails", completed=10, failed=failed)
        await h.engine.evaluate()  # the same minute evaluated twice changes nothing more
    [incident] = await all_incidents(h)
    assert incident.affected_jobs == 16 and "16 of 26" in incident.description
    assert incident.last_seen_time.timestamp() == h.clock()
    assert h.kinds() == ["FIRED"]


async def test_acknowledge_stops_reminders(harness_factory: Any) -> None:
    h: Harness = harness_factory(
        RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0), notify_repeat_hours=1
    )
    await h.tick("emails", **BAD)
    for _ in range(60):
        await h.tick("emails", **BAD)
    assert h.kinds() == ["FIRED", "REMINDER"]
    incident = h.transitions[0].incident
    with pytest.raises(InvalidArgument):
        await h.engine.resolve(incident.id, "admin-1", "  ")
    acked = await h.engine.acknowledge(incident.id, "op-1", "looking")
    assert acked.status is IncidentStatus.ACKNOWLEDGED and acked.acknowledged_by == "op-1"
    assert (await h.engine.acknowledge(incident.id, "op-2")).acknowledged_by == "op-1"  # idempotent
    for _ in range(130):
        h.clock.advance(60)
        h.source.put("emails", h.minute(-1), **BAD)
    await h.engine.evaluate()
    assert h.kinds() == ["FIRED", "REMINDER", "ACKNOWLEDGED"]
    resolved = await h.engine.resolve(incident.id, "admin-1", "fixed the credentials")
    assert resolved.resolve_note == "fixed the credentials" and not resolved.resolved_automatically
    with pytest.raises(FailedPrecondition):
        await h.engine.acknowledge(incident.id, "op-1")
    assert h.kinds()[-1] == "RESOLVED"


async def test_missing_data_never_resolves_and_stats_go_stale(harness_factory: Any) -> None:
    h: Harness = harness_factory(
        RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0, incident_quiet_minutes=1),
        stats_stale_minutes=5,
        incident_quiet_minutes=1,
    )
    await h.tick("emails", **BAD)
    for _ in range(20):
        await h.tick()  # the collector stopped: gaps
    statuses = {i.type.value: i.status for i in await all_incidents(h)}
    assert statuses == {"HIGH_FAILURE_RATE": IncidentStatus.ACTIVE, "STATS_STALE": IncidentStatus.ACTIVE}
    stale = next(t.incident for t in h.transitions if t.incident.type.value == "STATS_STALE")
    assert stale.fingerprint == "STATS_STALE:suite"
    # Data returns, clear: both resolve after their quiet minute.
    await h.tick("emails", **GOOD)
    await h.tick("emails", **GOOD)
    assert {i.status for i in await all_incidents(h)} == {IncidentStatus.RESOLVED}


async def test_unknown_data_restarts_the_quiet_period(harness_factory: Any) -> None:
    h: Harness = harness_factory(
        RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0, incident_quiet_minutes=2)
    )
    await h.tick("emails", **BAD)
    await h.tick("emails", **GOOD)  # clear since now
    await h.tick()  # gap: not clear, not firing
    await h.tick("emails", **GOOD)  # clear again, from here
    assert h.kinds() == ["FIRED"]
    await h.tick("emails", **GOOD)
    await h.tick("emails", **GOOD)
    assert h.kinds() == ["FIRED", "RESOLVED"]


async def test_per_queue_overrides_in_the_engine(db: AsyncEngine) -> None:
    clock, source = FakeClock(START), FakeSource()
    base = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
    strict = RuleConfig(
        failure_rate_window_minutes=1, failure_rate_pending_minutes=0, failure_rate_threshold=0.6
    )
    engine = make_engine(db, source, clock, base, {"tolerant": strict})
    clock.advance(60)
    for queue in ("emails", "tolerant"):
        source.put(queue, source_minute(clock), **BAD)
    result = await engine.evaluate()
    assert [c.incident.queue for c in result.changes] == ["emails"]


def source_minute(clock: FakeClock) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(clock() - 60, tz=UTC).replace(second=0, microsecond=0)


async def test_worker_down_and_failing_callback(harness_factory: Any) -> None:
    from datetime import UTC, datetime

    from workermon_incidents.rules import WorkerState

    h: Harness = harness_factory(RuleConfig(), beat_interval_seconds=10, worker_down_missed_beats=3)

    async def broken(_: Transition) -> None:
        raise RuntimeError("notifier bug")

    h.engine.on_transition(broken)
    now = datetime.fromtimestamp(h.clock(), tz=UTC)
    worker = WorkerState("w-1", False, now - timedelta(seconds=31), "missed beats", "h", ("emails",), 1)
    changes = await h.engine.evaluate_workers([worker])
    assert [c.kind for c in changes] == [EventKind.FIRED] and h.kinds() == ["FIRED"]
    back = WorkerState("w-1", True, now, "", "h", ("emails",))
    h.clock.advance(6 * 60)
    await h.engine.evaluate_workers([back])
    assert h.kinds() == ["FIRED"]  # clear since now; quiet 5 min
    h.clock.advance(5 * 60)
    await h.engine.evaluate_workers([back])
    assert h.kinds() == ["FIRED", "RESOLVED"]


async def test_two_engines_racing_open_one_incident(incidents_url: str) -> None:
    from workermon_core.db import create_engine

    db_a, db_b = create_engine(incidents_url), create_engine(incidents_url)
    try:
        clock, source = FakeClock(START), FakeSource()
        config = RuleConfig(failure_rate_window_minutes=1, failure_rate_pending_minutes=0)
        a = make_engine(db_a, source, clock, config)
        b = make_engine(db_b, source, clock, config)
        fired: list[Transition] = []

        async def record(t: Transition) -> None:
            fired.append(t)

        a.on_transition(record)
        b.on_transition(record)
        clock.advance(60)
        for i in range(5):
            source.put(f"q{i}", source_minute(clock), **BAD)
        await asyncio.gather(a.evaluate(), b.evaluate(), a.evaluate(), b.evaluate())
        async with db_a.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(incidents))).scalar()
        assert count == 5
        assert sorted(t.incident.queue or "" for t in fired if t.kind == "FIRED") == [
            f"q{i}" for i in range(5)
        ]
    finally:
        await db_a.dispose()
        await db_b.dispose()


async def test_unique_index_admits_one_open_incident_per_fingerprint(db: AsyncEngine) -> None:
    from datetime import UTC, datetime

    now = datetime(2031, 1, 1, tzinfo=UTC)

    def row(status: str) -> dict[str, Any]:
        return {
            "fingerprint": "QUEUE_BACKLOG:queue:q",
            "type": "QUEUE_BACKLOG",
            "severity": "WARNING",
            "status": status,
            "title": "",
            "description": "",
            "recommended_action": "",
            "affected_jobs": 0,
            "value": 0.0,
            "threshold": 0.0,
            "labels": "{}",
            "pending_time": now,
            "last_seen_time": now,
            "resolved_automatically": False,
            "notifications_sent": 0,
            "version": 1,
        }

    async with db.begin() as conn:
        for status in ("RESOLVED", "RESOLVED", "ACTIVE"):
            await conn.execute(insert(incidents).values(**row(status)))
    for status in ("PENDING", "ACKNOWLEDGED", "ACTIVE"):
        with pytest.raises(IntegrityError):
            async with db.begin() as conn:
                await conn.execute(insert(incidents).values(**row(status)))
