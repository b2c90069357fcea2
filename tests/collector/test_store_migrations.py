"""Collector migrations: up and down on both backends, concurrent upgrades, models match the scripts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import text

from tests.support.schema import schema_drift, table_names
from workermon_collector.migrate import MIGRATIONS
from workermon_collector.models import Base
from workermon_collector.store import SnapshotStore
from workermon_core.db import create_engine

TABLES = {"collector_alembic_version", "collector_queue_snapshots", "collector_hourly_rollups"}


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert await MIGRATIONS.current_revision(database_url) is None
    await MIGRATIONS.upgrade(database_url)
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision() == "0003"
    # Its own version table: other services' Alembic histories do not collide with it.
    assert await table_names(database_url) == TABLES
    await MIGRATIONS.upgrade(database_url)  # at head already: nothing to do
    await MIGRATIONS.downgrade(database_url, "base")
    assert await MIGRATIONS.current_revision(database_url) is None
    assert await table_names(database_url) == {"collector_alembic_version"}
    await MIGRATIONS.upgrade(database_url)
    assert await table_names(database_url) == TABLES


async def test_concurrent_upgrades_take_turns(database_url: str) -> None:
    await asyncio.gather(*(MIGRATIONS.upgrade(database_url) for _ in range(4)))
    assert await MIGRATIONS.current_revision(database_url) == "0003"


async def test_models_match_the_migrations(migrated_url: str) -> None:
    assert await schema_drift(migrated_url, Base.metadata, MIGRATIONS.version_table) == []


_OLD_COLUMNS = (
    "queue, minute, waiting, active, delayed, prioritized, waiting_children, completed, failed, paused, "
    "completed_in_minute, failed_in_minute, retried_in_minute, counts_approximate, completed_cumulative, "
    "failed_cumulative, collected_at, collection_ms, duration_source, failures_by_category"
)
_OLD_ROW = (
    f"INSERT INTO collector_queue_snapshots ({_OLD_COLUMNS}) "
    "VALUES ('old', :m, 0, 0, 0, 0, 0, 0, 0, false, 1, 0, 0, false, 7, 0, :m, 1.0, '', '{}')"
)


async def test_rows_written_before_0002_read_as_not_reset(database_url: str) -> None:
    await MIGRATIONS.upgrade(database_url, "0001")
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(_OLD_ROW), {"m": datetime(2031, 3, 4, 10, 30, tzinfo=UTC)})
        await MIGRATIONS.upgrade(database_url)
        row = await SnapshotStore(engine).latest("old")
        assert row is not None and row.completed_cumulative == 7 and row.counters_reset is False
        assert row.stalled_in_minute == 0  # 0003: nothing was counted before
    finally:
        await engine.dispose()
