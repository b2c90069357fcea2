"""Migration 0005_notify_groups on SQLite and PostgreSQL: adds the group and escalation columns the
models describe, and removes them again."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS, metadata

TABLES = {"notification_deliveries", "incidents"}
GROUP_COLUMNS = {"group_key", "group_leader_id"}


def _differences(connection: Connection) -> list[Any]:
    def ours(obj: Any, name: str | None, kind: str, _reflected: bool, _compare_to: Any) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        # The partial unique index is 0001's, and reflected differently by each database.
        return table in TABLES and not (kind == "index" and name == "uq_incidents_open_fingerprint")

    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "include_name": lambda name, kind, _parent: kind != "table" or name in TABLES,
            "include_object": ours,
        },
    )
    return list(compare_metadata(context, metadata()))


def _columns(connection: Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(connection).get_columns(table)}


async def test_upgrade_adds_group_and_escalation_columns_and_downgrade_removes_them(
    database_url: str,
) -> None:
    await MIGRATIONS.upgrade(database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            assert await conn.run_sync(_columns, "notification_deliveries") >= GROUP_COLUMNS
            assert "escalations" in await conn.run_sync(_columns, "incidents")
        await MIGRATIONS.downgrade(database_url, "0004_alerting_config")
        async with engine.connect() as conn:
            assert not GROUP_COLUMNS & await conn.run_sync(_columns, "notification_deliveries")
            assert "escalations" not in await conn.run_sync(_columns, "incidents")
        await MIGRATIONS.upgrade(database_url)
        assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
    finally:
        await engine.dispose()
