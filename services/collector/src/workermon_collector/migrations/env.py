"""Alembic environment of CollectorService.

`migrate.upgrade` hands over an open connection (in `config.attributes["connection"]`) on which it
already holds the migration lock; the `alembic` command line gets an async engine of its own from
the URL. Either way the revisions are recorded in `collector_alembic_version`, not in the default
`alembic_version`, so each service's migrations advance independently in a shared database.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from workermon_collector.migrate import VERSION_TABLE
from workermon_collector.models import Base
from workermon_core.db import create_engine

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _run(connection: Connection) -> None:
    # SQLite alters tables by copying them ("batch" mode); PostgreSQL alters them in place.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def _url() -> str:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set sqlalchemy.url or pass one to migrate.upgrade")
    return str(url)


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine(_url()))
