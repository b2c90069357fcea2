"""Collector fixtures: the shared `database_url` (tests/conftest.py, SQLite and PostgreSQL) migrated,
a store on it, a hand-moved clock and a snapshot row factory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_collector import migrate
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_core.db import create_engine

# A fixed "now" for tests that need one: a Tuesday, 10:30 UTC.
NOW = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)


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
