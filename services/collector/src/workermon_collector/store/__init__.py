"""Where snapshots live: idempotent minute writes, hourly rollups, retention, and bucketed history.

Works on PostgreSQL and SQLite through one SQLAlchemy Core code path; the few dialect-specific bits
(ON CONFLICT inserts, hour arithmetic) are chosen from the engine's dialect.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.protos import utcnow

from .parts import DEFAULT_MINUTE_RETENTION, Clock
from .queries import SnapshotQueries
from .writes import SnapshotWrites


class SnapshotStore(SnapshotWrites, SnapshotQueries):
    """The collector's tables behind an async API; safe for several processes writing at once."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        minute_retention: timedelta = DEFAULT_MINUTE_RETENTION,
        clock: Clock = utcnow,
    ) -> None:
        """`minute_retention` decides when queries read minute rows; `clock` gives aware UTC now."""
        self._engine = engine
        self._dialect = engine.dialect.name
        self.minute_retention = minute_retention
        self._clock = clock

    @property
    def engine(self) -> AsyncEngine:
        """The engine the store runs on."""
        return self._engine
