"""The incident migrations on SQLite and PostgreSQL: own version table, up and down, the partial index,
and 0004's table of alerting configuration revisions as the models describe it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from tests.support.schema import table_names
from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS
from workermon_incidents.models import IncidentBase


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


def _revision_table_differences(connection: Connection) -> list[Any]:
    table = "alerting_config_revisions"

    def ours(obj: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
        return (name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)) == table

    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: kind != "table" or name == table,
            "include_object": ours,
        },
    )
    return list(compare_metadata(context, IncidentBase.metadata))


async def test_alerting_config_revisions_up_and_down(database_url: str) -> None:
    await MIGRATIONS.upgrade(database_url, "0004_alerting_config")
    assert "alerting_config_revisions" in await table_names(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_revision_table_differences) == []
            key = await conn.run_sync(lambda c: sa.inspect(c).get_pk_constraint("alerting_config_revisions"))
            assert key["constrained_columns"] == ["revision"]
    finally:
        await engine.dispose()
    await MIGRATIONS.downgrade(database_url, "0003_silences")
    assert "alerting_config_revisions" not in await table_names(database_url)
    assert "incident_silences" in await table_names(database_url)
