"""Maintenance windows: a weekly time range (weekdays, start and end time of day, an IANA time zone) with
a silence's matchers; an incident firing inside one behaves as silenced, and what a window held back is
sent once it closes (the engine's held notification, as for silences).

A window does not cross midnight: "22:00 to 02:00" is two windows, so "end before start" is always an
input error and never a guess about which day was meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from workermon_core.errors import InvalidArgument, NotFound

from .models import maintenance_windows
from .silences import Matchers, matcher_columns, stored_matchers

WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


@dataclass(frozen=True, slots=True)
class Window:
    """One maintenance window; minutes count from local midnight."""

    id: int
    matchers: Matchers
    weekdays: tuple[str, ...]
    start_minute: int
    end_minute: int
    time_zone: str
    author: str
    comment: str
    create_time: datetime

    def is_open(self, now: datetime) -> bool:
        """True when `now` falls inside the window on one of its days, in its time zone."""
        local = now.astimezone(ZoneInfo(self.time_zone))
        minute = local.hour * 60 + local.minute
        return WEEKDAYS[local.weekday()] in self.weekdays and self.start_minute <= minute < self.end_minute


def check_weekdays(values: list[str], field: str) -> tuple[str, ...]:
    """Known, distinct weekday names in week order; INVALID_ARGUMENT naming the field otherwise."""
    if not values:
        raise InvalidArgument(field, "name at least one day (MON ... SUN)")
    for value in values:
        if value not in WEEKDAYS:
            raise InvalidArgument(
                field, f"{value[:20]!r} is not a weekday: use MON, TUE, WED, THU, FRI, SAT, SUN"
            )
    return tuple(day for day in WEEKDAYS if day in values)


def minute_of_day(value: str, field: str) -> int:
    """Minutes after midnight of "HH:MM" (24:00 is the end of the day)."""
    if not _TIME_OF_DAY.match(value):
        raise InvalidArgument(field, 'must be a time of day "HH:MM" (00:00 to 24:00)')
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def check_time_zone(value: str, field: str) -> str:
    """An IANA time zone name the system knows."""
    if not value or len(value) > 64 or value.startswith("/") or ".." in value:
        raise InvalidArgument(field, 'must be an IANA time zone such as "Asia/Seoul" or "UTC"')
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(field, f'{value!r} is not an IANA time zone such as "Asia/Seoul"') from None
    return value


def time_text(minute: int) -> str:
    """ "HH:MM" of minutes after midnight."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _window(row: object) -> Window:
    m = row._mapping  # type: ignore[attr-defined]
    return Window(
        id=m["id"],
        matchers=stored_matchers(m),
        weekdays=tuple(d for d in m["weekdays"].split(",") if d),
        start_minute=m["start_minute"],
        end_minute=m["end_minute"],
        time_zone=m["time_zone"],
        author=m["author"],
        comment=m["comment"],
        create_time=m["create_time"],
    )


async def all_windows(conn: AsyncConnection) -> list[Window]:
    """Every window (they are few: each is a standing rule, not an event)."""
    rows = await conn.execute(select(maintenance_windows).order_by(maintenance_windows.c.id))
    return [_window(row) for row in rows]


async def page(conn: AsyncConnection, before_id: int | None, limit: int) -> list[Window]:
    """Windows newest first, with ids below `before_id`."""
    stmt = select(maintenance_windows)
    if before_id is not None:
        stmt = stmt.where(maintenance_windows.c.id < before_id)
    rows = await conn.execute(stmt.order_by(maintenance_windows.c.id.desc()).limit(limit))
    return [_window(row) for row in rows]


async def insert_window(conn: AsyncConnection, window: Window, *, keep_id: bool = False) -> Window:
    """Store a new window; returns it with its id (`window.id` itself with `keep_id`: a deletion undone)."""
    result = await conn.execute(
        insert(maintenance_windows)
        .values(
            **({"id": window.id} if keep_id else {}),
            **matcher_columns(window.matchers),
            weekdays=",".join(window.weekdays),
            start_minute=window.start_minute,
            end_minute=window.end_minute,
            time_zone=window.time_zone,
            author=window.author,
            comment=window.comment,
            create_time=window.create_time,
        )
        .returning(maintenance_windows.c.id)
    )
    return Window(
        int(result.scalar_one()),
        window.matchers,
        window.weekdays,
        window.start_minute,
        window.end_minute,
        window.time_zone,
        window.author,
        window.comment,
        window.create_time,
    )


async def load(conn: AsyncConnection, window_id: int) -> Window:
    """One window; NOT_FOUND when there is none."""
    if window_id <= 0:
        raise InvalidArgument("window_id", "must be a positive maintenance window id")
    row = (
        await conn.execute(select(maintenance_windows).where(maintenance_windows.c.id == window_id))
    ).first()
    if row is None:
        raise NotFound(
            f"maintenance window {window_id} does not exist", reason="MAINTENANCE_WINDOW_NOT_FOUND"
        )
    return _window(row)


async def remove(conn: AsyncConnection, window_id: int) -> None:
    """Delete a window."""
    await conn.execute(delete(maintenance_windows).where(maintenance_windows.c.id == window_id))
