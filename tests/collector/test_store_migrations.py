"""Collector migrations: up and down on both backends, concurrent upgrades, models match the scripts."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from workermon_collector import migrate
from workermon_collector.models import Base
from workermon_core.db import create_engine

TABLES = {"collector_alembic_version", "collector_queue_snapshots", "collector_hourly_rollups"}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert await migrate.current_revision(database_url) is None
    await migrate.upgrade(database_url)
    assert await migrate.current_revision(database_url) == migrate.head_revision() == "0001"
    # Its own version table: other services' Alembic histories do not collide with it.
    assert await _tables(database_url) == TABLES
    await migrate.upgrade(database_url)  # at head already: nothing to do
    await migrate.downgrade(database_url, "base")
    assert await migrate.current_revision(database_url) is None
    assert await _tables(database_url) == {"collector_alembic_version"}
    await migrate.upgrade(database_url)
    assert await _tables(database_url) == TABLES


async def test_concurrent_upgrades_take_turns(database_url: str) -> None:
    await asyncio.gather(*(migrate.upgrade(database_url) for _ in range(4)))
    assert await migrate.current_revision(database_url) == "0001"


async def test_models_match_the_migrations(migrated_url: str) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            d
            for d in compare_metadata(context, Base.metadata)
            # The version table is Alembic's, not the models'.
            if not (d[0] == "remove_table" and d[1].name == migrate.VERSION_TABLE)
        ]

    engine = create_engine(migrated_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await engine.dispose()
