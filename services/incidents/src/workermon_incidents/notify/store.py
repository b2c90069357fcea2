"""Reads and writes of the delivery log; every state change is one guarded UPDATE.

The guards are what keep a notification from being sent twice: an attempt starts only by `claim`,
which moves a QUEUED row that is due, at the attempt count the caller expects, to SENDING, and only
one caller can win that UPDATE. An attempt ends only by `finish`, which moves that SENDING row on and
records the attempt in the same transaction.

Grouping: a FIRED delivery with a `group_key` (its route and channel) either joins the group whose
leader still waits (QUEUED, not attempted, its send time not reached), as a GROUPED member, or becomes
the leader of a new group, due `group_wait` after it opened. Both happen in `create`'s transaction,
under a lock (a transaction advisory lock on PostgreSQL plus the leader's row lock, `BEGIN IMMEDIATE`
on SQLite), so a member never joins a leader already being sent and two groups never open side by
side. The leader's message carries its members; `finish` gives them the leader's final status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workermon_core.db import locked_transaction
from workermon_core.errors import Unavailable

from ..models import incidents
from .models import AttemptOutcome, DeliveryStatus, attempts_table, deliveries_table

Clock = Callable[[], datetime]

# "The database cannot be reached or is busy right now", as opposed to a bug in a query.
UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError)
_ERROR_MAX = 2000
_REPLY_MAX = 500
# Spells "wmgroups": taken while a FIRED delivery joins or opens a group (the same in every replica).
_PG_GROUP_LOCK = 0x776D67726F757073


@dataclass(frozen=True, kw_only=True, slots=True)
class NewDelivery:
    """A delivery to create: one transition to one channel."""

    incident_id: int
    transition_seq: int
    kind: str
    channel: str
    channel_type: str
    event: str
    # Set for a FIRED notification that groups: its route and channel, and how long a group waits.
    group_key: str | None = None
    group_wait_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Delivery:
    """A delivery as stored."""

    id: int
    incident_id: int
    transition_seq: int
    kind: str
    channel: str
    channel_type: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    event: str
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    group_key: str | None = None
    group_leader_id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Attempt:
    """One recorded attempt."""

    delivery_id: int
    attempt: int
    at: datetime
    outcome: AttemptOutcome
    status_code: int | None
    reply: str | None
    error: str | None
    duration_ms: int


def _cut(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


class DeliveryStore:
    """The delivery log on an async engine (owned by the caller)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store works through."""
        return self._engine

    def _to_db(self, moment: datetime) -> datetime:
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        # SQLite has no time zones: UTC is stored as naive text, which sorts and compares correctly.
        return moment.replace(tzinfo=None) if self._sqlite else moment

    @staticmethod
    def _from_db(moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def _delivery(self, row: Row[Any]) -> Delivery:
        m = row._mapping
        return Delivery(
            id=int(m["id"]),
            incident_id=int(m["incident_id"]),
            transition_seq=int(m["transition_seq"]),
            kind=m["kind"],
            channel=m["channel"],
            channel_type=m["channel_type"],
            status=DeliveryStatus(m["status"]),
            attempts=int(m["attempts"]),
            last_error=m["last_error"],
            event=m["event"],
            next_attempt_at=self._from_db(m["next_attempt_at"]),
            created_at=self._from_db(m["created_at"]),
            updated_at=self._from_db(m["updated_at"]),
            group_key=m["group_key"],
            group_leader_id=None if m["group_leader_id"] is None else int(m["group_leader_id"]),
        )

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that holds the grouping lock; committed when the block ends cleanly."""
        # A writer from the start: joining reads, then writes, and must not interleave.
        async with locked_transaction(self._engine, _PG_GROUP_LOCK) as conn:
            yield conn

    async def create(self, items: Sequence[NewDelivery], now: datetime) -> list[int]:
        """Insert the deliveries that do not exist yet; the ids of those this call created.

        A (transition_seq, channel) already present (the transition was handled before, here or by
        another process) is skipped without error: its creator sends it, nobody else. An item with a
        group key joins its open group (status GROUPED) or opens one (QUEUED, due after the wait).
        """
        grouped = any(item.group_key and item.group_wait_seconds > 0 for item in items)
        try:
            if grouped:
                async with self._locked() as conn:
                    return await self._insert(conn, items, now)
            async with self._engine.begin() as conn:
                return await self._insert(conn, items, now)
        except UNREACHABLE as exc:
            raise Unavailable("cannot record the notifications", reason="DATABASE_UNAVAILABLE") from exc

    async def _insert(self, conn: AsyncConnection, items: Sequence[NewDelivery], now: datetime) -> list[int]:
        insert_fn = sqlite.insert if self._sqlite else postgresql.insert
        created: list[int] = []
        stamp = self._to_db(now)
        t = deliveries_table
        for item in items:
            stmt = (
                insert_fn(t)
                .values(
                    incident_id=item.incident_id,
                    transition_seq=item.transition_seq,
                    kind=item.kind,
                    channel=item.channel,
                    channel_type=item.channel_type,
                    status=DeliveryStatus.QUEUED.value,
                    attempts=0,
                    last_error=None,
                    event=item.event,
                    next_attempt_at=stamp,
                    created_at=stamp,
                    updated_at=stamp,
                )
                .on_conflict_do_nothing(index_elements=["transition_seq", "channel"])
                .returning(t.c.id)
            )
            new_id = (await conn.execute(stmt)).scalar_one_or_none()
            if new_id is None:
                continue
            created.append(int(new_id))
            if item.group_key and item.group_wait_seconds > 0:
                await self._join_or_open(conn, int(new_id), item, now)
        return created

    async def _join_or_open(
        self, conn: AsyncConnection, new_id: int, item: NewDelivery, now: datetime
    ) -> None:
        """Make the new row a member of its key's waiting group, or the leader of a new one."""
        t = deliveries_table
        assert item.group_key is not None
        leader_stmt = (
            select(t.c.id)
            .where(
                t.c.group_key == item.group_key,
                t.c.status == DeliveryStatus.QUEUED.value,
                t.c.attempts == 0,
                t.c.group_leader_id.is_(None),
                t.c.next_attempt_at > self._to_db(now),
                t.c.id != new_id,
            )
            .order_by(t.c.id)
            .limit(1)
        )
        if not self._sqlite:
            # Waits for a claim under way; once it commits the leader no longer matches.
            leader_stmt = leader_stmt.with_for_update()
        leader = (await conn.execute(leader_stmt)).scalar_one_or_none()
        if leader is not None:
            values: dict[str, Any] = {
                "status": DeliveryStatus.GROUPED.value,
                "group_key": item.group_key,
                "group_leader_id": int(leader),
            }
        else:
            due = now + timedelta(seconds=item.group_wait_seconds)
            values = {"group_key": item.group_key, "next_attempt_at": self._to_db(due)}
        await conn.execute(update(t).where(t.c.id == new_id).values(values))

    async def members(self, leader_id: int) -> list[Delivery]:
        """The deliveries waiting in `leader_id`'s group, oldest first (not the leader itself)."""
        t = deliveries_table
        stmt = (
            select(t)
            .where(t.c.group_leader_id == leader_id, t.c.status == DeliveryStatus.GROUPED.value)
            .order_by(t.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [self._delivery(row) for row in rows]

    async def get(self, delivery_id: int) -> Delivery | None:
        """The delivery, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(deliveries_table).where(deliveries_table.c.id == delivery_id))
            ).first()
        return None if row is None else self._delivery(row)

    async def for_incident(self, incident_id: int) -> list[Delivery]:
        """Every delivery of an incident, oldest first."""
        stmt = (
            select(deliveries_table)
            .where(deliveries_table.c.incident_id == incident_id)
            .order_by(deliveries_table.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [self._delivery(row) for row in rows]

    async def unfinished_before(self, delivery: Delivery) -> bool:
        """Whether an earlier transition to the same channel of the same incident, or of an older
        incident of its fingerprint, is still unfinished."""
        # Transition seqs increase across incidents, so an older incident's late resolve (which
        # PagerDuty would apply to the alert its dedup_key now names: the newer incident's) goes first.
        fingerprint = (
            select(incidents.c.fingerprint).where(incidents.c.id == delivery.incident_id).scalar_subquery()
        )
        same_fingerprint = select(incidents.c.id).where(incidents.c.fingerprint == fingerprint)
        stmt = (
            select(deliveries_table.c.id)
            .where(
                deliveries_table.c.incident_id.in_(same_fingerprint),
                deliveries_table.c.channel == delivery.channel,
                deliveries_table.c.transition_seq < delivery.transition_seq,
                deliveries_table.c.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.SENDING.value]),
            )
            .limit(1)
        )
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt)).first() is not None

    async def attempts(self, delivery_id: int) -> list[Attempt]:
        """The attempts of a delivery, in order."""
        stmt = (
            select(attempts_table)
            .where(attempts_table.c.delivery_id == delivery_id)
            .order_by(attempts_table.c.attempt)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [
            Attempt(
                delivery_id=int(r.delivery_id),
                attempt=int(r.attempt),
                at=self._from_db(r.at),
                outcome=AttemptOutcome(r.outcome),
                status_code=r.status_code,
                reply=r.reply,
                error=r.error,
                duration_ms=int(r.duration_ms),
            )
            for r in rows
        ]

    async def claim(self, delivery_id: int, expected_attempts: int, now: datetime) -> Delivery | None:
        """Start attempt `expected_attempts + 1`: QUEUED and due -> SENDING. None if another took it.

        `expected_attempts` makes a duplicated task message harmless: it names the attempt it was
        sent for, and once that attempt has been made the message no longer matches.
        """
        t = deliveries_table
        stmt = (
            update(t)
            .where(
                t.c.id == delivery_id,
                t.c.status == DeliveryStatus.QUEUED.value,
                t.c.attempts == expected_attempts,
                t.c.next_attempt_at <= self._to_db(now),
            )
            .values(
                status=DeliveryStatus.SENDING.value, attempts=t.c.attempts + 1, updated_at=self._to_db(now)
            )
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(stmt)).rowcount != 1:
                return None
            row = (await conn.execute(select(t).where(t.c.id == delivery_id))).one()
        return self._delivery(row)

    async def finish(
        self,
        delivery: Delivery,
        *,
        status: DeliveryStatus,
        outcome: AttemptOutcome,
        started: datetime,
        now: datetime,
        duration_ms: int,
        status_code: int | None,
        reply: str | None,
        error: str | None,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """End the SENDING attempt of `delivery` (as claimed): record it and move the row to `status`.

        False when the row was no longer SENDING that attempt (a sweep declared it UNKNOWN meanwhile);
        the attempt is recorded all the same.
        """
        t = deliveries_table
        values: dict[str, Any] = {"status": status.value, "updated_at": self._to_db(now)}
        values["last_error"] = _cut(error, _ERROR_MAX)
        if next_attempt_at is not None:
            values["next_attempt_at"] = self._to_db(next_attempt_at)
        async with self._engine.begin() as conn:
            await self._record(
                conn,
                delivery_id=delivery.id,
                attempt=delivery.attempts,
                at=started,
                outcome=outcome,
                status_code=status_code,
                reply=reply,
                error=error,
                duration_ms=duration_ms,
            )
            changed = await conn.execute(
                update(t)
                .where(
                    t.c.id == delivery.id,
                    t.c.status == DeliveryStatus.SENDING.value,
                    t.c.attempts == delivery.attempts,
                )
                .values(values)
            )
            if changed.rowcount == 1 and status.final:
                await self._settle_members(conn, delivery.id, status, error, now)
        return changed.rowcount == 1

    async def _settle_members(
        self, conn: AsyncConnection, leader_id: int, status: DeliveryStatus, error: str | None, now: datetime
    ) -> None:
        """Give a group's members the final status of the message that carried them."""
        t = deliveries_table
        await conn.execute(
            update(t)
            .where(t.c.group_leader_id == leader_id, t.c.status == DeliveryStatus.GROUPED.value)
            .values(status=status.value, last_error=_cut(error, _ERROR_MAX), updated_at=self._to_db(now))
        )

    async def _record(
        self,
        conn: AsyncConnection,
        *,
        delivery_id: int,
        attempt: int,
        at: datetime,
        outcome: AttemptOutcome,
        status_code: int | None,
        reply: str | None,
        error: str | None,
        duration_ms: int,
    ) -> None:
        insert_fn = sqlite.insert if self._sqlite else postgresql.insert
        # Recording twice (a sweep and the late attempt itself) keeps the first word on it.
        await conn.execute(
            insert_fn(attempts_table)
            .values(
                delivery_id=delivery_id,
                attempt=attempt,
                at=self._to_db(at),
                outcome=outcome.value,
                status_code=status_code,
                reply=_cut(reply, _REPLY_MAX),
                error=_cut(error, _ERROR_MAX),
                duration_ms=duration_ms,
            )
            .on_conflict_do_nothing(index_elements=["delivery_id", "attempt"])
        )

    async def mark_unknown(self, stale_before: datetime, now: datetime) -> list[int]:
        """SENDING rows last touched before `stale_before` -> UNKNOWN (their attempt was interrupted).

        Never re-sent: the interrupted attempt may have arrived. The attempt is recorded as UNKNOWN.
        """
        t = deliveries_table
        error = "interrupted while sending (the process stopped); the receiver may have it, not resent"
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.id, t.c.attempts, t.c.updated_at).where(
                        t.c.status == DeliveryStatus.SENDING.value, t.c.updated_at < self._to_db(stale_before)
                    )
                )
            ).all()
            marked: list[int] = []
            for row in rows:
                changed = await conn.execute(
                    update(t)
                    .where(
                        and_(
                            t.c.id == row.id,
                            t.c.status == DeliveryStatus.SENDING.value,
                            t.c.attempts == row.attempts,
                        )
                    )
                    .values(
                        status=DeliveryStatus.UNKNOWN.value, last_error=error, updated_at=self._to_db(now)
                    )
                )
                if changed.rowcount == 1:
                    await self._settle_members(conn, int(row.id), DeliveryStatus.UNKNOWN, error, now)
                    started = self._from_db(row.updated_at)
                    await self._record(
                        conn,
                        delivery_id=int(row.id),
                        attempt=int(row.attempts),
                        at=started,
                        outcome=AttemptOutcome.UNKNOWN,
                        status_code=None,
                        reply=None,
                        error=error,
                        duration_ms=0,
                    )
                    marked.append(int(row.id))
        return marked

    async def queued(self, due_before: datetime | None = None, limit: int = 1000) -> list[Delivery]:
        """QUEUED deliveries (those due before `due_before`, when given), oldest first."""
        t = deliveries_table
        stmt = select(t).where(t.c.status == DeliveryStatus.QUEUED.value)
        if due_before is not None:
            stmt = stmt.where(t.c.next_attempt_at < self._to_db(due_before))
        stmt = stmt.order_by(t.c.id).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [self._delivery(row) for row in rows]
