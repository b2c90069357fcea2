"""Silences: matchers and a time range during which matching incidents are recorded but not notified.

Like Alertmanager's, a silence matches on what the incident carries (type, queue, worker, labels) and
needs at least one matcher, so that nobody silences everything by leaving the form empty. Unlike
Alertmanager's, a notification held back is not lost: the engine keeps the held transition's event id
on the incident and sends it, under that id (the delivery key), once no silence matches any more.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete as sa_delete
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from workermon_core import validation
from workermon_core.errors import InvalidArgument, NotFound

from .globs import check_glob
from .incident import Incident
from .models import silences
from .rules import IncidentType

# A silence is for a deploy or an outage, not a way to switch alerting off.
MAX_SILENCE = timedelta(days=366)


class SilenceState(StrEnum):
    """Where a silence is in time."""

    ACTIVE = "ACTIVE"
    PENDING = "PENDING"
    EXPIRED = "EXPIRED"


@dataclass(frozen=True, slots=True)
class Matchers:
    """Which incidents a silence covers; an empty matcher matches anything."""

    type: IncidentType | None = None
    queue_glob: str = ""
    worker_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, incident: Incident) -> bool:
        """True when every matcher that is set matches the incident."""
        if self.type is not None and incident.type is not self.type:
            return False
        if self.queue_glob and not fnmatch.fnmatchcase(incident.queue or "", self.queue_glob):
            return False
        if self.worker_id and incident.worker_id != self.worker_id:
            return False
        return all(incident.labels.get(k) == v for k, v in self.labels.items())

    def validate(self, prefix: str) -> Matchers:
        """INVALID_ARGUMENT naming the field for a bad glob, worker id or label; self otherwise."""
        if self.type is None and not (self.queue_glob or self.worker_id or self.labels):
            raise InvalidArgument(prefix, "set at least one matcher: a silence must not cover everything")
        check_glob(self.queue_glob, f"{prefix}.queue_glob")
        if self.worker_id:
            validation.worker_id(self.worker_id, f"{prefix}.worker_id")
        if len(self.labels) > validation.MAX_LABELS:
            raise InvalidArgument(f"{prefix}.labels", f"must have at most {validation.MAX_LABELS} entries")
        for key, value in self.labels.items():
            validation.text(key, f"{prefix}.labels", validation.MAX_NAME, required=True, control=False)
            validation.text(value, f"{prefix}.labels[{key}]", validation.MAX_NAME, required=True)
        return self


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence; `end_time` moves to the moment it was expired early."""

    id: int
    matchers: Matchers
    start_time: datetime
    end_time: datetime
    author: str
    comment: str
    create_time: datetime
    expired_by: str | None = None

    def state(self, now: datetime) -> SilenceState:
        """ACTIVE, PENDING or EXPIRED at `now`."""
        if now >= self.end_time:
            return SilenceState.EXPIRED
        if now < self.start_time:
            return SilenceState.PENDING
        return SilenceState.ACTIVE


def check_times(start: datetime, end: datetime, now: datetime, prefix: str) -> None:
    """INVALID_ARGUMENT naming the field: the end after the start and in the future, within a year."""
    if end <= start:
        raise InvalidArgument(f"{prefix}.end_time", "must be after start_time")
    if end <= now:
        raise InvalidArgument(f"{prefix}.end_time", "must be in the future")
    if end - start > MAX_SILENCE:
        raise InvalidArgument(f"{prefix}.end_time", "must be at most 366 days after start_time")


def check_comment(comment: str, field_name: str) -> str:
    """A required comment of at most MAX_COMMENT characters."""
    if not comment.strip():
        raise InvalidArgument(field_name, "is required: say why notifications are muted")
    return validation.text(comment, field_name, validation.MAX_COMMENT)


def first_match(active: Sequence[Silence], incident: Incident) -> Silence | None:
    """The matching silence that lasts longest (the one to name in "silenced until"), or None."""
    found = [s for s in active if s.matchers.matches(incident)]
    return max(found, key=lambda s: (s.end_time, s.id)) if found else None


def stored_matchers(m: Mapping[str, Any]) -> Matchers:
    """The matchers of a silence or maintenance window row."""
    return Matchers(
        type=IncidentType(m["incident_type"]) if m["incident_type"] else None,
        queue_glob=m["queue_glob"],
        worker_id=m["worker_id"],
        labels=json.loads(m["labels"]),
    )


def matcher_columns(m: Matchers) -> dict[str, str]:
    """The matcher columns of a silence or maintenance window row."""
    return {
        "incident_type": m.type.value if m.type else "",
        "queue_glob": m.queue_glob,
        "worker_id": m.worker_id,
        "labels": json.dumps(dict(m.labels), sort_keys=True),
    }


def _silence(row: Any) -> Silence:
    m = row._mapping
    return Silence(
        id=m["id"],
        matchers=stored_matchers(m),
        start_time=m["start_time"],
        end_time=m["end_time"],
        author=m["author"],
        comment=m["comment"],
        create_time=m["create_time"],
        expired_by=m["expired_by"],
    )


async def active(conn: AsyncConnection, now: datetime) -> list[Silence]:
    """Silences in force at `now`."""
    rows = await conn.execute(select(silences).where(silences.c.start_time <= now, silences.c.end_time > now))
    return [_silence(row) for row in rows]


async def insert_silence(conn: AsyncConnection, silence: Silence) -> Silence:
    """Store a new silence; returns it with its id."""
    m = silence.matchers
    result = await conn.execute(
        insert(silences)
        .values(
            **matcher_columns(m),
            start_time=silence.start_time,
            end_time=silence.end_time,
            author=silence.author,
            comment=silence.comment,
            create_time=silence.create_time,
        )
        .returning(silences.c.id)
    )
    return Silence(
        int(result.scalar_one()),
        m,
        silence.start_time,
        silence.end_time,
        silence.author,
        silence.comment,
        silence.create_time,
    )


async def load(conn: AsyncConnection, silence_id: int) -> Silence:
    """One silence; NOT_FOUND when there is none."""
    if silence_id <= 0:
        raise InvalidArgument("silence_id", "must be a positive silence id")
    row = (await conn.execute(select(silences).where(silences.c.id == silence_id))).first()
    if row is None:
        raise NotFound(f"silence {silence_id} does not exist", reason="SILENCE_NOT_FOUND")
    return _silence(row)


async def delete(conn: AsyncConnection, silence_id: int) -> None:
    """Remove a silence whose creation could not be audited."""
    await conn.execute(sa_delete(silences).where(silences.c.id == silence_id))


async def expire(conn: AsyncConnection, silence: Silence, actor: str, now: datetime) -> Silence:
    """End the silence at `now` (a pending one ends before it starts); an ended one is left as it is."""
    if silence.state(now) is SilenceState.EXPIRED:
        return silence
    start = min(silence.start_time, now)
    await conn.execute(
        update(silences)
        .where(silences.c.id == silence.id)
        .values(start_time=start, end_time=now, expired_by=actor)
    )
    return Silence(
        silence.id,
        silence.matchers,
        start,
        now,
        silence.author,
        silence.comment,
        silence.create_time,
        actor,
    )


async def restore(conn: AsyncConnection, silence: Silence) -> None:
    """Put back a silence's times and expirer as they were (an expiry whose audit entry failed)."""
    await conn.execute(
        update(silences)
        .where(silences.c.id == silence.id)
        .values(start_time=silence.start_time, end_time=silence.end_time, expired_by=silence.expired_by)
    )


async def page(
    conn: AsyncConnection, state: SilenceState | None, now: datetime, before_id: int | None, limit: int
) -> list[Silence]:
    """Silences newest first, in `state` at `now` (None: every state), with ids below `before_id`."""
    stmt = select(silences)
    if state is SilenceState.ACTIVE:
        stmt = stmt.where(silences.c.start_time <= now, silences.c.end_time > now)
    elif state is SilenceState.PENDING:
        stmt = stmt.where(silences.c.start_time > now, silences.c.end_time > now)
    elif state is SilenceState.EXPIRED:
        stmt = stmt.where(silences.c.end_time <= now)
    if before_id is not None:
        stmt = stmt.where(silences.c.id < before_id)
    rows = await conn.execute(stmt.order_by(silences.c.id.desc()).limit(limit))
    return [_silence(row) for row in rows]
