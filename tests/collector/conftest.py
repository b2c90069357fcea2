"""Collector fixtures: every database test runs on SQLite and on PostgreSQL, each in a place of its own.

PostgreSQL comes from DATABASE_URL when it names one, else postgresql://postgres@127.0.0.1:5432/test.
When it does not answer, its half of the tests is skipped, unless CI_REQUIRE_POSTGRES=1, which makes
that an error: CI must never pass by silently testing SQLite alone.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from workermon_collector import migrate
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_core.db import create_engine, normalize_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
# A fixed "now" for tests that need one: a Tuesday, 10:30 UTC.
NOW = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)


def postgres_url_from_env() -> str:
    """DATABASE_URL when it is a PostgreSQL URL, else the local default."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql")):
        return normalize_url(configured)
    return DEFAULT_POSTGRES_URL


def with_search_path(url: str, schema: str) -> str:
    """The URL with `schema` first on the search path: tables and Alembic's version table land there."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    options = f"{options} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    """The PostgreSQL URL when the server answers; None (or a failure under CI_REQUIRE_POSTGRES=1).

    Synchronous on purpose: fixtures ask for it lazily from inside the running event loop.
    """
    url = postgres_url_from_env()
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not available"
        if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CI_REQUIRE_POSTGRES=1 but PostgreSQL at {url} does not answer: {exc!r}")
        return None
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each backend: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'workermon.db'}"
        return
    # Asked for only here, so SQLite tests neither wait for nor fail on a missing PostgreSQL.
    postgres_url: str | None = request.getfixturevalue("postgres_url")
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    schema = "wm_" + uuid.uuid4().hex[:16]
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_search_path(postgres_url, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def backend(database_url: str) -> str:
    """ "sqlite" or "postgresql": the backend of this test's database."""
    return make_url(database_url).get_backend_name()


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """The isolated database with the collector's migrations applied."""
    await migrate.upgrade(database_url)
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database, disposed after the test."""
    engine = create_engine(migrated_url)
    yield engine
    await engine.dispose()


@dataclass
class UTCClock:
    """A datetime clock tests set by hand (aware UTC)."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def utc_clock() -> UTCClock:
    """A hand-moved clock starting at NOW."""
    return UTCClock()


@pytest.fixture
def store(engine: AsyncEngine, utc_clock: UTCClock) -> SnapshotStore:
    """A SnapshotStore on the migrated database, with the hand-moved clock and 24 h of minute rows."""
    return SnapshotStore(engine, minute_retention=timedelta(hours=24), clock=utc_clock)


@dataclass
class RowFactory:
    """Builds SnapshotRows with plausible defaults; keyword arguments override any field."""

    defaults: dict[str, Any] = field(default_factory=dict)

    def __call__(self, queue: str, minute: datetime, **overrides: Any) -> SnapshotRow:
        values: dict[str, Any] = {
            "queue": queue,
            "minute": minute,
            "waiting": 3,
            "active": 2,
            "delayed": 1,
            "prioritized": 0,
            "waiting_children": 0,
            "completed": 100,
            "failed": 5,
            "paused": False,
            "completed_in_minute": 10,
            "failed_in_minute": 1,
            "retried_in_minute": 2,
            "counts_approximate": False,
            "completed_cumulative": 1000,
            "failed_cumulative": 50,
            "collected_at": minute + timedelta(minutes=1, seconds=2),
            "collection_ms": 12.5,
            **self.defaults,
            **overrides,
        }
        return SnapshotRow(**values)


@pytest.fixture
def make_row() -> Callable[..., SnapshotRow]:
    """A SnapshotRow factory: make_row("emails", minute, waiting=7)."""
    return RowFactory()
