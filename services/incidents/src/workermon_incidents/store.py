"""Reads and writes of the incident tables.

Every write runs in `IncidentStore.write()`, a transaction that first takes the incident write lock:
a transaction advisory lock on PostgreSQL, `BEGIN IMMEDIATE` (the database write lock) on SQLite.
Writers therefore take turns, which gives two guarantees: an evaluation reads the open incidents and
changes them without another replica changing them underneath, and timeline ids are committed in
increasing order (on PostgreSQL a sequence hands out ids at insert time, so without the lock a
later id could commit first and a WatchIncidents reader past it would never see the earlier one).
The partial unique index stays the last word on "one open incident per fingerprint".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workermon_core.db import locked_transaction

from .incident import Decision, Escalation, EventKind, Incident, IncidentEvent, IncidentStatus
from .models import OPEN_STATUSES, audit_outbox, incident_events, incidents
from .rules import IncidentType, Severity

# Spells "wmincwri"; the same in every replica, different from the migration lock.
_PG_WRITE_LOCK = 0x776D696E63777269
_MUTABLE = (
    "severity",
    "status",
    "title",
    "description",
    "recommended_action",
    "affected_jobs",
    "value",
    "threshold",
    "start_time",
    "last_seen_time",
    "clear_since",
    "acknowledge_time",
    "resolve_time",
    "last_notice_time",
    "acknowledged_by",
    "resolved_by",
    "resolve_note",
    "resolved_automatically",
    "notifications_sent",
    "held_event_id",
)
# A long-running incident's reminders would grow the list without end; the oldest go first.
MAX_DECISIONS = 50


def _incident(row: Any) -> Incident:
    m = row._mapping
    return Incident(
        id=m["id"],
        fingerprint=m["fingerprint"],
        type=IncidentType(m["type"]),
        severity=Severity(m["severity"]),
        status=IncidentStatus(m["status"]),
        queue=m["queue"],
        worker_id=m["worker_id"],
        title=m["title"],
        description=m["description"],
        recommended_action=m["recommended_action"],
        affected_jobs=m["affected_jobs"],
        value=m["value"],
        threshold=m["threshold"],
        labels=json.loads(m["labels"]),
        pending_time=m["pending_time"],
        start_time=m["start_time"],
        last_seen_time=m["last_seen_time"],
        clear_since=m["clear_since"],
        acknowledge_time=m["acknowledge_time"],
        resolve_time=m["resolve_time"],
        last_notice_time=m["last_notice_time"],
        acknowledged_by=m["acknowledged_by"],
        resolved_by=m["resolved_by"],
        resolve_note=m["resolve_note"],
        resolved_automatically=bool(m["resolved_automatically"]),
        notifications_sent=m["notifications_sent"],
        version=m["version"],
        decisions=tuple(Decision.from_dict(d) for d in json.loads(m["notify_decisions"] or "[]")),
        held_event_id=m["held_event_id"],
        escalations=tuple(Escalation.from_dict(e) for e in json.loads(m["escalations"] or "[]")),
    )


def _decisions(incident: Incident) -> str:
    return json.dumps([d.to_dict() for d in incident.decisions[-MAX_DECISIONS:]])


def _escalations(incident: Incident) -> str:
    return json.dumps([e.to_dict() for e in incident.escalations])


def _event(row: Any) -> IncidentEvent:
    m = row._mapping
    return IncidentEvent(
        id=m["id"],
        incident_id=m["incident_id"],
        kind=EventKind(m["kind"]),
        time=m["time"],
        actor=m["actor"],
        message=m["message"],
        incident=Incident.from_json(m["incident"]),
    )


class IncidentStore:
    """The incident tables behind one engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction holding the incident write lock; committed when the block ends cleanly."""
        async with locked_transaction(self.engine, _PG_WRITE_LOCK) as conn:
            yield conn

    # --- inside a write ---------------------------------------------------------------------------------

    async def open_incidents(self, conn: AsyncConnection) -> dict[str, Incident]:
        """Every open incident by fingerprint."""
        rows = await conn.execute(select(incidents).where(incidents.c.status.in_(OPEN_STATUSES)))
        return {incident.fingerprint: incident for incident in map(_incident, rows)}

    async def held(self, conn: AsyncConnection) -> list[Incident]:
        """Open incidents with a notification held back by a silence."""
        rows = await conn.execute(
            select(incidents).where(
                incidents.c.status.in_(OPEN_STATUSES), incidents.c.held_event_id.is_not(None)
            )
        )
        return [_incident(row) for row in rows]

    async def load(self, conn: AsyncConnection, incident_id: int) -> Incident | None:
        """One incident, read inside the write."""
        row = (await conn.execute(select(incidents).where(incidents.c.id == incident_id))).first()
        return _incident(row) if row is not None else None

    async def insert(self, conn: AsyncConnection, incident: Incident) -> Incident:
        """Store a new incident (its id is assigned); IntegrityError if its fingerprint is open already."""
        values = {
            name: getattr(incident, name)
            for name in (
                "fingerprint",
                "queue",
                "worker_id",
                "pending_time",
                *_MUTABLE,
            )
        }
        values.update(
            type=incident.type.value,
            severity=incident.severity.value,
            status=incident.status.value,
            labels=json.dumps(dict(incident.labels), sort_keys=True),
            notify_decisions=_decisions(incident),
            escalations=_escalations(incident),
            version=1,
        )
        result = await conn.execute(insert(incidents).values(**values).returning(incidents.c.id))
        return replace(incident, id=int(result.scalar_one()), version=1)

    async def update(self, conn: AsyncConnection, incident: Incident) -> Incident:
        """Write an incident's mutable fields; raises if it changed since it was read (version)."""
        values: dict[str, Any] = {name: getattr(incident, name) for name in _MUTABLE}
        values.update(
            severity=incident.severity.value,
            status=incident.status.value,
            labels=json.dumps(dict(incident.labels), sort_keys=True),
            notify_decisions=_decisions(incident),
            escalations=_escalations(incident),
            version=incident.version + 1,
        )
        result = await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id, incidents.c.version == incident.version)
            .values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrentChange(f"incident {incident.id} changed while it was being updated")
        return replace(incident, version=incident.version + 1)

    async def delete(self, conn: AsyncConnection, incident: Incident) -> None:
        """Remove a pending incident whose condition cleared."""
        await conn.execute(delete(incidents).where(incidents.c.id == incident.id))

    async def add_event(
        self,
        conn: AsyncConnection,
        incident: Incident,
        kind: EventKind,
        at: datetime,
        *,
        actor: str = "system",
        message: str = "",
    ) -> IncidentEvent:
        """Append a timeline entry with the incident as it is now."""
        result = await conn.execute(
            insert(incident_events)
            .values(
                incident_id=incident.id,
                kind=kind.value,
                time=at,
                actor=actor,
                message=message,
                incident=incident.to_json(),
            )
            .returning(incident_events.c.id)
        )
        return IncidentEvent(int(result.scalar_one()), incident.id, kind, at, actor, message, incident)

    async def delete_event(self, conn: AsyncConnection, event_id: int) -> None:
        """Remove a timeline entry whose change was undone (its audit entry could not be written)."""
        await conn.execute(delete(incident_events).where(incident_events.c.id == event_id))

    async def add_audit(self, conn: AsyncConnection, request: bytes, at: datetime) -> int:
        """Keep a change's audit entry (a serialized CreateAuditLogRequest) in the change's transaction."""
        result = await conn.execute(
            insert(audit_outbox).values(request=request, create_time=at).returning(audit_outbox.c.id)
        )
        return int(result.scalar_one())

    async def remove_audit(self, conn: AsyncConnection, outbox_id: int) -> None:
        """Forget an outbox entry: the audit log has it, or its change was undone."""
        await conn.execute(delete(audit_outbox).where(audit_outbox.c.id == outbox_id))

    async def audits_before(self, before: datetime, limit: int = 100) -> list[tuple[int, bytes]]:
        """Outbox entries kept before `before`, oldest first: (id, request)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(audit_outbox.c.id, audit_outbox.c.request)
                .where(audit_outbox.c.create_time < before)
                .order_by(audit_outbox.c.id)
                .limit(limit)
            )
            return [(int(row.id), bytes(row.request)) for row in rows]

    # --- reads ------------------------------------------------------------------------------------------

    async def get(self, incident_id: int) -> Incident | None:
        """One incident."""
        async with self.engine.connect() as conn:
            return await self.load(conn, incident_id)

    async def timeline(self, incident_id: int) -> list[IncidentEvent]:
        """An incident's timeline, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(incident_events)
                .where(incident_events.c.incident_id == incident_id)
                .order_by(incident_events.c.id)
            )
            return [_event(row) for row in rows]

    async def list_incidents(
        self,
        *,
        statuses: Sequence[str] = (),
        type: str | None = None,
        queue: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[Incident]:
        """Incidents newest first (by id), filtered; `before_id` continues a listing."""
        stmt = select(incidents)
        if statuses:
            stmt = stmt.where(incidents.c.status.in_(list(statuses)))
        if type:
            stmt = stmt.where(incidents.c.type == type)
        if queue:
            stmt = stmt.where(incidents.c.queue == queue)
        if before_id is not None:
            stmt = stmt.where(incidents.c.id < before_id)
        stmt = stmt.order_by(incidents.c.id.desc()).limit(limit)
        async with self.engine.connect() as conn:
            return [_incident(row) for row in await conn.execute(stmt)]

    async def events_after(self, after: int, limit: int = 500) -> list[IncidentEvent]:
        """Timeline entries of every incident with id > after, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(incident_events)
                .where(incident_events.c.id > after)
                .order_by(incident_events.c.id)
                .limit(limit)
            )
            return [_event(row) for row in rows]

    async def events_since(
        self, since: datetime, kinds: Sequence[EventKind], limit: int = 10_000
    ) -> list[IncidentEvent]:
        """Timeline entries of these kinds at or after `since`, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(incident_events)
                .where(incident_events.c.time >= since, incident_events.c.kind.in_([k.value for k in kinds]))
                .order_by(incident_events.c.id)
                .limit(limit)
            )
            return [_event(row) for row in rows]

    async def events_by_id(self, ids: Sequence[int]) -> list[IncidentEvent]:
        """The timeline entries with these ids (those that still exist), oldest first."""
        if not ids:
            return []
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(incident_events)
                .where(incident_events.c.id.in_(list(ids)))
                .order_by(incident_events.c.id)
            )
            return [_event(row) for row in rows]

    async def noticed_since(self, since: datetime) -> list[Incident]:
        """The incidents whose last FIRED or REMINDER notice (a released hold too) is at or after `since`."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(incidents).where(incidents.c.last_notice_time >= since))
            return list(map(_incident, rows))

    async def incidents_by_id(self, ids: Sequence[int]) -> dict[int, Incident]:
        """The incidents with these ids (those that still exist)."""
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(incidents).where(incidents.c.id.in_(list(ids))))
            return {incident.id: incident for incident in map(_incident, rows)}

    async def latest_event_id(self) -> int:
        """The newest timeline id (0 when there is none)."""
        async with self.engine.connect() as conn:
            value = (await conn.execute(select(func.max(incident_events.c.id)))).scalar()
            return int(value or 0)


class ConcurrentChange(Exception):
    """An incident changed between read and write (only possible outside the write lock)."""
