"""Schema migrations of CollectorService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_collector/migrations`). Several collector
processes may start at once against one database, so an upgrade first takes a lock: a transaction
advisory lock on PostgreSQL (DDL there is transactional, so the loser then finds the schema at head),
`BEGIN IMMEDIATE` on SQLite (the database write lock, waited for through the busy timeout).
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from workermon_core.db import create_engine, normalize_url

VERSION_TABLE = "collector_alembic_version"
SCRIPT_LOCATION = "workermon_collector:migrations"
# Any constant works as long as every collector uses the same one; it spells "wmcollec".
_PG_LOCK_KEY = 0x776D636F6C6C6563


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged scripts (for `command.*` calls and tooling)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        # Through attributes, not set_main_option: configparser would choke on '%' in passwords.
        config.attributes["url"] = normalize_url(url)
    return config


async def _lock(conn: AsyncConnection) -> None:
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # The driver only opens transactions before DML; DDL must join an explicit write transaction.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def _run(url: str, action: str, revision: str) -> None:
    config = alembic_config(url)
    # A throwaway engine without a pool: migrations run once, and must not leave connections behind.
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await _lock(conn)
            await conn.run_sync(_upgrade if action == "upgrade" else _downgrade, config, revision)
            await conn.commit()
    finally:
        await engine.dispose()


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the collector's tables at `url` up to `revision` (default: the latest).

    Safe to run from several processes at once: they take turns, and the later ones find nothing to do.
    """
    await _run(url, "upgrade", revision)


async def downgrade(url: str, revision: str) -> None:
    """Take the collector's tables at `url` back to `revision` ("base" drops them all)."""
    await _run(url, "downgrade", revision)


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first upgrade."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Connection) -> str | None:
                context = MigrationContext.configure(sync_conn, opts={"version_table": VERSION_TABLE})
                return context.get_current_revision()

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    """The latest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
