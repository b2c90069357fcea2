"""Incident fixtures: the shared `database_url` (SQLite and PostgreSQL) with the incident migrations
applied, an in-memory data source the tests fill minute by minute, and an engine on a hand-moved clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import FakeClock
from tests.support.schema import engine_on
from tests.support.webhooks import http_server
from workermon_incidents.engine import EngineConfig, IncidentEngine, Reading
from workermon_incidents.migrate import MIGRATIONS
from workermon_incidents.rules import Point, QueueWindow, RuleBook, RuleConfig, WorkerState
from workermon_incidents.store import IncidentStore
from workermon_incidents.transitions import Transition

__all__ = ["http_server"]  # a fixture shared with other packages (tests/support/webhooks.py)

# 2027-01-15 08:00:00 UTC, on a minute boundary.
START = 1_800_000_000.0 - (1_800_000_000.0 % 60)


@dataclass
class FakeSource:
    """Snapshots and workers set by hand; read() answers like GrpcSource."""

    points: dict[str, dict[datetime, Point]] = field(default_factory=dict)
    workers: list[WorkerState] | None = field(default_factory=list)
    reads: int = 0

    def put(self, queue: str, minute: datetime, **values: Any) -> None:
        """Record one minute of one queue (online_workers defaults to 1)."""
        values.setdefault("online_workers", 1)
        self.points.setdefault(queue, {})[minute] = Point(minute=minute, has_data=True, **values)

    async def read(
        self, end: datetime, minutes: int, queues: Sequence[str] | None, extra: Sequence[str]
    ) -> Reading:
        self.reads += 1
        reading = Reading(workers=list(self.workers) if self.workers is not None else None)
        names = list(queues) if queues is not None else sorted(set(self.points) | set(extra))
        newest: datetime | None = None
        for name in names:
            stored = self.points.get(name, {})
            window = []
            for i in range(minutes, 0, -1):
                minute = end - timedelta(minutes=i)
                window.append(stored.get(minute, Point(minute=minute, has_data=False)))
            reading.windows[name] = QueueWindow(name, tuple(window))
            for minute in stored:
                if minute < end and (newest is None or minute > newest):
                    newest = minute
        reading.newest_minute = newest
        return reading


@dataclass
class Harness:
    """An engine on a FakeSource and a FakeClock, recording every transition."""

    engine: IncidentEngine
    source: FakeSource
    clock: FakeClock
    transitions: list[Transition]

    def minute(self, offset: int = 0) -> datetime:
        """The start of the current minute plus `offset` minutes."""
        now = datetime.fromtimestamp(self.clock(), tz=UTC).replace(second=0, microsecond=0)
        return now + timedelta(minutes=offset)

    async def tick(self, queue: str | None = None, **values: Any) -> list[Any]:
        """Advance one minute; record the minute just ended for `queue`; evaluate."""
        self.clock.advance(60)
        if queue is not None:
            self.source.put(queue, self.minute(-1), **values)
        return (await self.engine.evaluate()).changes

    def kinds(self) -> list[str]:
        return [t.kind for t in self.transitions]


@pytest.fixture
async def incidents_url(database_url: str) -> str:
    """The isolated database with the incident migrations applied."""
    await MIGRATIONS.upgrade(database_url)
    return database_url


@pytest.fixture
async def db(incidents_url: str) -> AsyncIterator[AsyncEngine]:
    async for engine in engine_on(incidents_url):
        yield engine


def make_engine(
    db: AsyncEngine,
    source: FakeSource,
    clock: FakeClock,
    defaults: RuleConfig | None = None,
    overrides: dict[str, RuleConfig] | None = None,
    **config: Any,
) -> IncidentEngine:
    base = defaults or RuleConfig()
    return IncidentEngine(
        IncidentStore(db),
        source,
        RuleBook(base, dict(overrides or {})),
        EngineConfig(**config),
        clock=clock,
    )


@pytest.fixture
def harness_factory(db: AsyncEngine) -> Any:
    def build(defaults: RuleConfig | None = None, **config: Any) -> Harness:
        clock = FakeClock(START)
        source = FakeSource()
        engine = make_engine(db, source, clock, defaults, **config)
        seen: list[Transition] = []

        async def record(transition: Transition) -> None:
            seen.append(transition)

        engine.on_transition(record)
        return Harness(engine, source, clock, seen)

    return build
