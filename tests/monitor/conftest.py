"""Monitor fixtures: the shared `database_url` (tests/conftest.py, SQLite and PostgreSQL) with the
monitor's migrations applied, an engine on it, and an audit store with a hand-set clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.db import create_engine
from workermon_monitor import migrate
from workermon_monitor.audit.store import AuditStore

# A fixed "now" for tests that need one.
NOW = datetime(2031, 3, 4, 10, 30, tzinfo=UTC)


@dataclass
class SetClock:
    """A datetime clock tests set by hand (aware UTC)."""

    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def monitor_url(database_url: str) -> str:
    """The isolated database with the monitor's migrations applied."""
    await migrate.upgrade(database_url)
    return database_url


@pytest.fixture
async def monitor_engine(monitor_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database, disposed after the test."""
    engine = create_engine(monitor_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def set_clock() -> SetClock:
    """A clock standing at NOW until a test moves it."""
    return SetClock()


@pytest.fixture
def audit_store(monitor_engine: AsyncEngine, set_clock: SetClock) -> AuditStore:
    """An AuditStore on the migrated database, with the hand-set clock and the default retention."""
    return AuditStore(monitor_engine, clock=set_clock)
