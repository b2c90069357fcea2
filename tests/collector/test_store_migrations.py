"""Collector migrations: up and down on both backends, concurrent upgrades, models match the scripts."""

from __future__ import annotations

import asyncio

from tests.support.schema import schema_drift, table_names
from workermon_collector.migrate import MIGRATIONS
from workermon_collector.models import Base

TABLES = {"collector_alembic_version", "collector_queue_snapshots", "collector_hourly_rollups"}


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert await MIGRATIONS.current_revision(database_url) is None
    await MIGRATIONS.upgrade(database_url)
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision() == "0001"
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
    assert await MIGRATIONS.current_revision(database_url) == "0001"


async def test_models_match_the_migrations(migrated_url: str) -> None:
    assert await schema_drift(migrated_url, Base.metadata, MIGRATIONS.version_table) == []
