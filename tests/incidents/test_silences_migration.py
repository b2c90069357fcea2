"""Migration 0003_silences on SQLite and PostgreSQL: creates what the models describe, and goes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from workermon_core.db import create_engine
from workermon_incidents.migrate import MIGRATIONS
from workermon_incidents.models import IncidentBase

TABLES = {"incident_silences", "incident_maintenance_windows", "incidents"}


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
    return list(compare_metadata(context, IncidentBase.metadata))


def _columns(connection: Connection) -> set[str]:
    return {c["name"] for c in sa.inspect(connection).get_columns("incidents")}


async def test_upgrade_adds_silences_and_decisions_and_downgrade_removes_them(database_url: str) -> None:
    await MIGRATIONS.upgrade(database_url)
    # Later revisions follow; the models describe the head.
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
            assert {"notify_decisions", "held_event_id"} <= await conn.run_sync(_columns)
        await MIGRATIONS.downgrade(database_url, "0002_notifications")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
            assert not {"incident_silences", "incident_maintenance_windows"} & names
            assert not {"notify_decisions", "held_event_id"} & await conn.run_sync(_columns)
        await MIGRATIONS.upgrade(database_url)
        assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
    finally:
        await engine.dispose()
