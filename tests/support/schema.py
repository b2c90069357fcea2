"""What every service's database tests share: an engine on a migrated database, which tables a database
holds, and model drift."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.db import create_engine


async def engine_on(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `url` for a fixture to yield, disposed after the test."""
    engine = create_engine(url)
    yield engine
    await engine.dispose()


async def table_names(url: str) -> set[str]:
    """The tables of the database at `url`."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def schema_drift(url: str, metadata: MetaData, version_table: str) -> list[Any]:
    """What Alembic's autogenerate would change to make the migrated database match the models.

    Alembic's own version table is left out: it is not one of the models.
    """

    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            d
            for d in compare_metadata(context, metadata)
            if not (
                d[0] == "remove_table" and (d[1].name == version_table or d[1].name not in metadata.tables)
            )
        ]

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(diff)
    finally:
        await engine.dispose()
