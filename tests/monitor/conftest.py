"""Monitor fixtures: the shared `database_url` (tests/conftest.py, SQLite and PostgreSQL) with the
monitor's migrations applied, an engine on it, and an audit store with a hand-set clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import FIXED_NOW, DateClock
from tests.support.schema import engine_on
from workermon_monitor.audit.store import AuditStore
from workermon_monitor.migrate import MIGRATIONS

NOW = FIXED_NOW


@pytest.fixture
async def monitor_url(database_url: str) -> str:
    """The isolated database with the monitor's migrations applied."""
    await MIGRATIONS.upgrade(database_url)
    return database_url


@pytest.fixture
async def monitor_engine(monitor_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database, disposed after the test."""
    async for engine in engine_on(monitor_url):
        yield engine


@pytest.fixture
def set_clock() -> DateClock:
    """A clock standing at NOW until a test moves it."""
    return DateClock()


@pytest.fixture
def audit_store(monitor_engine: AsyncEngine, set_clock: DateClock) -> AuditStore:
    """An AuditStore on the migrated database, with the hand-set clock and the default retention."""
    return AuditStore(monitor_engine, clock=set_clock)
