"""Collector fixtures: the shared `database_url` (tests/conftest.py, SQLite and PostgreSQL) migrated,
a store on it, a hand-moved clock and a snapshot row factory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import FIXED_NOW, DateClock
from tests.support.schema import engine_on
from workermon_collector.migrate import MIGRATIONS
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore

NOW = FIXED_NOW


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """The isolated database with the collector's migrations applied."""
    await MIGRATIONS.upgrade(database_url)
    return database_url


@pytest.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database, disposed after the test."""
    async for engine in engine_on(migrated_url):
        yield engine


@pytest.fixture
def utc_clock() -> DateClock:
    """A hand-moved clock starting at NOW."""
    return DateClock()


@pytest.fixture
def store(engine: AsyncEngine, utc_clock: DateClock) -> SnapshotStore:
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
