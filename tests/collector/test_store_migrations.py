"""Collector migrations: up and down on both backends, concurrent upgrades, models match the scripts."""

from __future__ import annotations

import asyncio

from tests.support.schema import schema_drift, table_names
from workermon_collector import migrate
from workermon_collector.models import Base

TABLES = {"collector_alembic_version", "collector_queue_snapshots", "collector_hourly_rollups"}


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert await migrate.current_revision(database_url) is None
    await migrate.upgrade(database_url)
    assert await migrate.current_revision(database_url) == migrate.head_revision() == "0001"
    # Its own version table: other services' Alembic histories do not collide with it.
    assert await table_names(database_url) == TABLES
    await migrate.upgrade(database_url)  # at head already: nothing to do
    await migrate.downgrade(database_url, "base")
    assert await migrate.current_revision(database_url) is None
    assert await table_names(database_url) == {"collector_alembic_version"}
    await migrate.upgrade(database_url)
    assert await table_names(database_url) == TABLES


async def test_concurrent_upgrades_take_turns(database_url: str) -> None:
    await asyncio.gather(*(migrate.upgrade(database_url) for _ in range(4)))
    assert await migrate.current_revision(database_url) == "0001"


async def test_models_match_the_migrations(migrated_url: str) -> None:
    assert await schema_drift(migrated_url, Base.metadata, migrate.VERSION_TABLE) == []
