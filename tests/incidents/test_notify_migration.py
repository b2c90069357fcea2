"""Migration 0002_notifications on SQLite and PostgreSQL: creates what the models describe, and goes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS
from workermon_incidents.notify.models import NOTIFY_METADATA

TABLES = {"notification_deliveries", "notification_attempts"}
# Added by 0005_notify_groups (tests/incidents/test_routing_migration.py checks them).
LATER = {
    "group_key",
    "group_leader_id",
    "ix_notification_deliveries_group",
    "ix_notification_deliveries_leader",
}


def _ours(obj: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
    # Only the notification tables: the incident tables are 0001's business.
    table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table in TABLES and name not in LATER


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: kind != "table" or name in TABLES,
            "include_object": _ours,
        },
    )
    return list(compare_metadata(context, NOTIFY_METADATA))


async def test_upgrade_creates_the_tables_the_models_describe_and_downgrade_drops_them(
    database_url: str,
) -> None:
    await MIGRATIONS.upgrade(database_url, "0002_notifications")
    assert await MIGRATIONS.current_revision(database_url) == "0002_notifications"
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            assert names >= TABLES
            assert await conn.run_sync(_differences) == []
        await MIGRATIONS.downgrade(database_url, "0001_incidents")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert not names & TABLES
        assert await MIGRATIONS.current_revision(database_url) == "0001_incidents"
        await MIGRATIONS.upgrade(database_url, "0002_notifications")
        assert await MIGRATIONS.current_revision(database_url) == "0002_notifications"
    finally:
        await engine.dispose()
