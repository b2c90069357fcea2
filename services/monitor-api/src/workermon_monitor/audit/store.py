"""The audit log store: append-only records of every attempted action, listed newest first.

An action whose audit record cannot be written must not happen, so `append` raises `Unavailable`
when the database is unreachable and the caller refuses the action. Nothing is ever updated; rows
leave only through retention pruning. Listing pages by keyset on (time desc, id desc): the cursor is
the last row's (time, id), so appending between pages neither repeats nor skips a row, and every
filter is served by an index ending in (time, id) instead of an OFFSET scan.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from sqlalchemy import ColumnElement, Select, and_, delete, insert, or_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.errors import Unavailable
from workermon_core.protos import utcnow

from .models import AuditAction, AuditEntityType, AuditOutcome, AuditRole, audit_log

DEFAULT_RETENTION = timedelta(days=90)
DEFAULT_PRUNE_BATCH = 5_000

# Where a page ends: the (time, id) of its last row.
Cursor: TypeAlias = tuple[datetime, int]
Clock = Callable[[], datetime]

# Errors that mean "the database cannot be reached or is busy right now", not a bug in the query.
_UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError)
_ACTIONS = frozenset(AuditAction)


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntry:
    """One attempted action: who, in which role, did what to which entity, and how it ended.

    `parameters` (the request) and `result` (what changed, or {"error": message}) are JSON text,
    stored as given. `role`, `entity_type` and `outcome` take the values of AuditRole, AuditEntityType
    and AuditOutcome; only `action` is checked, against AuditAction. For a job, `entity_id` is
    "queue/jobid" and `queue` is set too, so a queue's history lists its jobs' actions as well.
    """

    time: datetime
    actor: str
    role: str
    action: str
    entity_type: str
    entity_id: str
    outcome: str
    queue: str | None = None
    parameters: str = "{}"
    result: str = "{}"
    request_id: str = ""
    # The writer's id of this write: a second append with it returns the first one's id.
    idempotency_key: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEntryRow(AuditEntry):
    """An AuditEntry as stored, with its id."""

    id: int


AuditPage: TypeAlias = tuple[list[AuditEntryRow], Cursor | None]


def _aware_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name}: naive datetime {moment.isoformat()} (expected timezone-aware UTC)")
    return moment.astimezone(UTC)


def _check(entry: AuditEntry) -> None:
    # A record a filter can never find (a misspelled action) is as good as lost: refuse it early.
    # Role, entity type and outcome stay open strings: other services write entries for their callers.
    if entry.action not in _ACTIONS:
        raise ValueError(f"action: unknown value {entry.action!r}")
    for name, text in (("parameters", entry.parameters), ("result", entry.result)):
        try:
            json.loads(text)
        except ValueError:
            raise ValueError(f"{name}: not JSON text: {text[:80]!r}") from None


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """The list filters; an empty string (or None) filters nothing. `start` inclusive, `end` exclusive."""

    actor: str = ""
    action: str = ""
    entity_type: str = ""
    entity_id: str = ""
    queue: str = ""
    outcome: str = ""
    start: datetime | None = None
    end: datetime | None = None


class AuditStore:
    """Appends audit entries, lists them newest first by keyset pages, prunes the expired ones."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention: timedelta = DEFAULT_RETENTION,
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._retention = retention
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store writes through (owned by the caller, who disposes of it)."""
        return self._engine

    @property
    def retention(self) -> timedelta:
        """How long entries are kept by `prune_expired`."""
        return self._retention

    def _to_db(self, moment: datetime, name: str) -> datetime:
        moment = _aware_utc(moment, name)
        # SQLite has no time zones: UTC is stored as naive text, which sorts and compares correctly.
        return moment.replace(tzinfo=None) if self._sqlite else moment

    async def append(self, entry: AuditEntry) -> int:
        """Record `entry`; returns its id (that of the entry already written under its idempotency key,
        if there is one). Unavailable when the database cannot take it."""
        _check(entry)
        values = {
            "time": self._to_db(entry.time, "time"),
            "actor": entry.actor,
            "role": str(entry.role),
            "action": str(entry.action),
            "entity_type": str(entry.entity_type),
            "entity_id": entry.entity_id,
            "queue": entry.queue,
            "parameters": entry.parameters,
            "outcome": str(entry.outcome),
            "result": entry.result,
            "request_id": entry.request_id,
            "idempotency_key": entry.idempotency_key,
        }
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(insert(audit_log).values(values))
        except sa_exc.IntegrityError:
            if entry.idempotency_key is None:
                raise
            return await self._written_under(entry.idempotency_key)
        except _UNREACHABLE as exc:
            raise _unavailable("cannot record the action") from exc
        key = result.inserted_primary_key
        if key is None:  # only for an INSERT without a primary key column, which this is not
            raise RuntimeError("the database returned no id for the audit entry")
        return int(key[0])

    async def _written_under(self, idempotency_key: str) -> int:
        """The id of the entry written with `idempotency_key` (a unique index holds at most one)."""
        stmt = select(audit_log.c.id).where(audit_log.c.idempotency_key == idempotency_key)
        try:
            async with self._engine.connect() as conn:
                found = (await conn.execute(stmt)).scalar()
        except _UNREACHABLE as exc:
            raise _unavailable("cannot read the audit log") from exc
        if found is None:
            raise RuntimeError(f"no audit entry under idempotency key {idempotency_key!r} after a conflict")
        return int(found)

    async def complete(self, audit_id: int, outcome: str, result: str) -> bool:
        """Give a PENDING entry its outcome and result, once; False if it was not PENDING.

        The one change the log allows: an allowed action is recorded before it runs (so it never runs
        unrecorded) and this records how it ended. A finished entry is never changed.
        """
        if outcome == AuditOutcome.PENDING or outcome not in set(AuditOutcome):
            raise ValueError(f"an entry can only be completed to a final outcome, not {outcome!r}")
        json.loads(result)
        stmt = (
            update(audit_log)
            .where(audit_log.c.id == audit_id, audit_log.c.outcome == AuditOutcome.PENDING.value)
            .values(outcome=outcome, result=result)
        )
        try:
            async with self._engine.begin() as conn:
                changed = (await conn.execute(stmt)).rowcount
        except _UNREACHABLE as exc:
            raise _unavailable("cannot complete the audit entry") from exc
        return bool(changed)

    async def get(self, audit_id: int) -> AuditEntryRow | None:
        """The entry with id `audit_id`, or None."""
        stmt = select(audit_log).where(audit_log.c.id == audit_id)
        try:
            async with self._engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
        except _UNREACHABLE as exc:
            raise _unavailable("cannot read the audit log") from exc
        return None if row is None else _entry(row)

    async def list(
        self,
        *,
        actor: str = "",
        action: str = "",
        entity_type: str = "",
        entity_id: str = "",
        queue: str = "",
        outcome: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        page_size: int,
        after: Cursor | None = None,
    ) -> AuditPage:
        """One page of matching entries, newest first, and the cursor of the next page (None at the end)."""
        if page_size <= 0:
            raise ValueError(f"page_size: must be positive, not {page_size}")
        filters = AuditFilter(actor, action, entity_type, entity_id, queue, outcome, start, end)
        stmt = self.list_query(filters, page_size=page_size, after=after)
        try:
            async with self._engine.connect() as conn:
                rows = (await conn.execute(stmt)).all()
        except _UNREACHABLE as exc:
            raise _unavailable("cannot read the audit log") from exc
        entries = [_entry(row) for row in rows[:page_size]]
        more = len(rows) > page_size
        return entries, ((entries[-1].time, entries[-1].id) if more else None)

    def list_query(self, filters: AuditFilter, *, page_size: int, after: Cursor | None) -> Select[Any]:
        """The SELECT behind `list` (one row more than the page, to tell whether another page follows)."""
        t = audit_log.c
        where: list[ColumnElement[bool]] = []
        for column, value in (
            (t.actor, filters.actor),
            (t.action, filters.action),
            (t.entity_type, filters.entity_type),
            (t.entity_id, filters.entity_id),
            (t.queue, filters.queue),
            (t.outcome, filters.outcome),
        ):
            if value:
                where.append(column == str(value))
        if filters.start is not None:
            where.append(t.time >= self._to_db(filters.start, "start"))
        if filters.end is not None:
            where.append(t.time < self._to_db(filters.end, "end"))
        if after is not None:
            after_time, after_id = self._to_db(after[0], "after"), after[1]
            # Not a row-value comparison: `time <= t` alone is an index range on every backend and
            # dialect version; the OR only settles rows sharing the cursor's time.
            where.append(and_(t.time <= after_time, or_(t.time < after_time, t.id < after_id)))
        return select(audit_log).where(*where).order_by(t.time.desc(), t.id.desc()).limit(page_size + 1)

    async def prune(self, older_than: datetime, batch: int = DEFAULT_PRUNE_BATCH) -> int:
        """Delete entries before `older_than`, `batch` rows per transaction; returns how many went.

        Small transactions keep writers (the actions being audited) from waiting behind one long
        delete, and on SQLite keep the write lock short.
        """
        if batch <= 0:
            raise ValueError(f"batch: must be positive, not {batch}")
        cutoff = self._to_db(older_than, "older_than")
        t = audit_log.c
        oldest = select(t.id).where(t.time < cutoff).order_by(t.time, t.id).limit(batch)
        stmt = delete(audit_log).where(t.id.in_(oldest))
        total = 0
        try:
            while True:
                async with self._engine.begin() as conn:
                    deleted = max((await conn.execute(stmt)).rowcount or 0, 0)
                total += deleted
                if deleted < batch:
                    return total
        except _UNREACHABLE as exc:
            raise _unavailable("cannot prune the audit log") from exc

    async def prune_expired(self) -> int:
        """Delete entries older than the retention (90 days unless configured); returns how many went."""
        return await self.prune(self._clock() - self._retention)


def _unavailable(what: str) -> Unavailable:
    return Unavailable(f"the audit database is unreachable: {what}", reason="DATABASE_UNAVAILABLE")


def _from_db(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _entry(row: Row[Any]) -> AuditEntryRow:
    m = row._mapping
    return AuditEntryRow(
        id=int(m["id"]),
        time=_from_db(m["time"]),
        actor=m["actor"],
        role=m["role"],
        action=m["action"],
        entity_type=m["entity_type"],
        entity_id=m["entity_id"],
        queue=m["queue"],
        parameters=m["parameters"],
        outcome=m["outcome"],
        result=m["result"],
        request_id=m["request_id"],
        idempotency_key=m["idempotency_key"],
    )


__all__ = [
    "DEFAULT_PRUNE_BATCH",
    "DEFAULT_RETENTION",
    "AuditAction",
    "AuditEntityType",
    "AuditEntry",
    "AuditEntryRow",
    "AuditFilter",
    "AuditOutcome",
    "AuditPage",
    "AuditRole",
    "AuditStore",
    "Cursor",
]
