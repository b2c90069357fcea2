"""The incident migrations on SQLite and PostgreSQL: own version table, up and down, the partial index."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.support.schema import table_names
from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS


async def test_upgrade_and_downgrade(database_url: str) -> None:
    assert await MIGRATIONS.current_revision(database_url) is None
    await MIGRATIONS.upgrade(database_url, "0001_incidents")
    assert await MIGRATIONS.current_revision(database_url) == "0001_incidents"
    tables = await table_names(database_url)
    assert {"incidents", "incident_events", "incidents_alembic_version"} <= tables
    assert "alembic_version" not in tables  # never the shared default version table
    await MIGRATIONS.upgrade(database_url)  # to head (later revisions included), twice is harmless
    await MIGRATIONS.upgrade(database_url)
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
    await MIGRATIONS.downgrade(database_url, "base")
    assert not {"incidents", "incident_events"} & await table_names(database_url)
    await MIGRATIONS.upgrade(database_url, "0001_incidents")
    assert "incidents" in await table_names(database_url)


async def test_partial_unique_index_exists(database_url: str) -> None:
    await MIGRATIONS.upgrade(database_url, "0001_incidents")
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            indexes = await conn.run_sync(lambda c: sa.inspect(c).get_indexes("incidents"))
    finally:
        await engine.dispose()
    unique = [i for i in indexes if i["name"] == "uq_incidents_open_fingerprint"]
    assert unique and unique[0]["unique"] and unique[0]["column_names"] == ["fingerprint"]
