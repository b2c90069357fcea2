"""Databases of the collector benchmark: a SQLite file, and PostgreSQL in a schema of the run's own.

PostgreSQL is DATABASE_URL when it names one, else the local postgresql://postgres@127.0.0.1:5432/test
when it answers. Each run creates a fresh schema (first on the search path, so the migrations and
every table land there) and drops it afterwards, as the collector tests do.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import uuid
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import delete, func, insert, select, text, true
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from workermon_collector import sketches
from workermon_collector.migrate import MIGRATIONS
from workermon_collector.models import rollups, snapshots
from workermon_collector.rows import DurationSummary, SnapshotRow
from workermon_core.db import create_engine, normalize_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass
class Database:
    """One migrated database the benchmark writes to."""

    kind: str  # "sqlite" or "postgresql"
    label: str
    url: str
    engine: AsyncEngine
    version: str

    async def delete_minute(self, minute: datetime, queues: Sequence[str]) -> int:
        """Remove the snapshot rows of `queues` in one minute (so the next cycle writes that minute
        again). Only theirs: the loaded history of other queues may hold the same minute."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(snapshots).where(snapshots.c.minute == minute, snapshots.c.queue.in_(queues))
            )
        return max(result.rowcount or 0, 0)


def postgres_url() -> str:
    """DATABASE_URL when it is a PostgreSQL URL, else the local default."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql")):
        return normalize_url(configured)
    return DEFAULT_POSTGRES_URL


def postgres_answers(url: str) -> tuple[bool, str]:
    """(True, server version) when PostgreSQL answers within a few seconds, else (False, the error)."""
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SHOW server_version")).scalar())
    except Exception as exc:  # any failure means "not available"
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()
    return True, version


def with_search_path(url: str, schema: str) -> str:
    """The URL with `schema` first on the search path: tables and Alembic's version table land there."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    options = f"{options} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL without password or options, for printing."""
    parsed = make_url(url)
    return parsed.set(query={}).render_as_string(hide_password=True)


async def open_sqlite(directory: Path, stack: AsyncExitStack) -> Database:
    """A migrated SQLite file (WAL, as the collector configures it) in `directory`."""
    url = f"sqlite+aiosqlite:///{directory / 'workermon.db'}"
    await MIGRATIONS.upgrade(url)
    engine = create_engine(url)
    stack.push_async_callback(engine.dispose)
    return Database("sqlite", "SQLite", url, engine, sqlite3.sqlite_version)


async def open_postgres(url: str, version: str, stack: AsyncExitStack) -> Database:
    """A migrated, fresh PostgreSQL schema, dropped when `stack` closes."""
    schema = "wm_bench_" + uuid.uuid4().hex[:12]
    admin = create_engine(url, poolclass=NullPool)
    stack.push_async_callback(admin.dispose)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    async def drop() -> None:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))

    stack.push_async_callback(drop)
    scoped = with_search_path(url, schema)
    await MIGRATIONS.upgrade(scoped)
    engine = create_engine(scoped)
    stack.push_async_callback(engine.dispose)
    return Database("postgresql", "PostgreSQL", scoped, engine, version)


# --- history for QuerySnapshots -----------------------------------------------------------------------


def summary_pool(size: int, seed: int = 11) -> list[DurationSummary]:
    """Duration summaries with real sketches, as minutes of busy queues have them (reused across rows)."""
    rng = random.Random(seed)
    pool = []
    for _ in range(size):
        sketch = sketches.new_sketch()
        median_ms = rng.uniform(5, 400)
        for _ in range(rng.randint(20, 300)):
            sketch.add(rng.lognormvariate(math.log(median_ms), 0.9))
        summary = sketches.summarize(sketch)
        if summary is not None:
            pool.append(summary)
    return pool


def history_rows(
    queue: str, index: int, now: datetime, minutes: int, pool: list[DurationSummary]
) -> list[SnapshotRow]:
    """`minutes` minute rows of one queue ending at `now` (exclusive): counts, durations, failures."""
    rng = random.Random(index)
    rows = []
    waiting = rng.randint(0, 5_000)
    completed_total = failed_total = 0
    for i in range(minutes):
        minute = now - timedelta(minutes=minutes - i)
        done, failed = rng.randint(0, 600), rng.randint(0, 12)
        completed_total += done
        failed_total += failed
        waiting = max(0, waiting + rng.randint(-200, 200))
        categories = {"timeout": failed // 2, "rate_limit": failed - failed // 2} if failed else {}
        busy = done > 0
        rows.append(
            SnapshotRow(
                queue=queue,
                minute=minute,
                waiting=waiting,
                active=rng.randint(0, 50),
                delayed=rng.randint(0, 300),
                prioritized=rng.randint(0, 20),
                waiting_children=0,
                completed=rng.randint(0, 1_000),
                failed=rng.randint(0, 1_000),
                paused=False,
                completed_in_minute=done,
                failed_in_minute=failed,
                retried_in_minute=rng.randint(0, 5),
                counts_approximate=False,
                completed_cumulative=completed_total,
                failed_cumulative=failed_total,
                collected_at=minute + timedelta(minutes=1, seconds=1),
                collection_ms=rng.uniform(200, 900),
                processing=pool[(index * 7 + i) % len(pool)] if busy else None,
                wait=pool[(index * 13 + i * 3) % len(pool)] if busy else None,
                duration_source="jobs" if busy else "",
                oldest_waiting_ms=rng.randint(0, 600_000) if waiting else None,
                online_workers=rng.randint(1, 20),
                failures_by_category=categories,
            )
        )
    return rows


async def repeat_rollups(engine: AsyncEngine, since: datetime, hours: int, copies: int) -> int:
    """Copy the `hours` hours of rollups from `since` on `copies` times, each copy `hours` further back.

    The copies are the store's own rows (`SnapshotStore.rollup` wrote the originals from minute rows),
    inserted in one statement in hour order, as an hourly rollup job lays them out on disk: weeks of
    minute rows to roll up would take hours to write. PostgreSQL only (generate_series, make_interval).
    Returns the rows inserted.
    """
    if copies < 1:
        return 0
    back = func.generate_series(1, copies).table_valued("k").render_derived(name="back")
    hour = (rollups.c.hour - func.make_interval(0, 0, 0, 0, back.c.k * hours)).label("hour")
    names = [c.name for c in rollups.c if c.name != "id"]
    copied = (
        select(*(hour if name == "hour" else rollups.c[name] for name in names))
        .select_from(rollups.join(back, true()))
        .where(rollups.c.hour >= since, rollups.c.hour < since + timedelta(hours=hours))
        .order_by(hour, rollups.c.queue)
    )
    async with engine.begin() as conn:
        result = await conn.execute(insert(rollups).from_select(names, copied).returning(rollups.c.id))
        return len(result.all())
