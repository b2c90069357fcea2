"""Schema migrations run from code at start-up, for every service that keeps tables (no alembic.ini).

Each service ships its Alembic scripts inside its package and describes them with a `Migrations`:
where the scripts are, the version table recording its revision, and the advisory lock key. Services
may share one database (and one schema), so each keeps its own version table and lock: upgrading
one never reads or writes another's tables, and two services' upgrades do not wait for each other
on PostgreSQL.

Several processes of one service may start at once against one database, so an upgrade first takes
a lock: a transaction advisory lock on PostgreSQL (DDL there is transactional, so the loser then
finds the schema at head), `BEGIN IMMEDIATE` on SQLite (the database write lock, waited for through
the busy timeout). Within one process, upgrades also take turns on an asyncio lock: Alembic's `context`
and `op` are process globals, so two services' migrations must never interleave on one event loop
even when their database locks differ.

A service's `migrations/env.py` is a call to `run_environment` with its metadata and version table.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from .db import create_engine, normalize_url, take_write_lock

# Where `Migrations` hands env.py the connection it holds the lock on.
CONNECTION_ATTRIBUTE = "connection"
URL_ATTRIBUTE = "url"

_Command = Callable[[Config, str], None]

# One lock per event loop: an asyncio.Lock belongs to the loop it first waited on.
_process_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _process_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _process_locks.get(loop)
    if lock is None:
        lock = _process_locks[loop] = asyncio.Lock()
    return lock


@dataclass(frozen=True, slots=True)
class Migrations:
    """One service's Alembic scripts: `script_location` ("package:dir"), version table, lock key.

    `lock_key` is any signed 64-bit constant, the same in every process of the service and different
    from every other service's, so unrelated upgrades of one shared database do not serialize.
    """

    script_location: str
    version_table: str
    lock_key: int

    def config(self, url: str | None = None) -> Config:
        """An Alembic Config pointing at the packaged scripts (for `command.*` calls and tooling)."""
        config = Config()
        config.set_main_option("script_location", self.script_location)
        if url is not None:
            # Through attributes, not set_main_option: configparser would choke on '%' in passwords.
            config.attributes[URL_ATTRIBUTE] = normalize_url(url)
        return config

    async def upgrade(self, url: str, revision: str = "head") -> None:
        """Bring the service's tables at `url` up to `revision`; concurrent callers take turns."""
        await self._run(url, command.upgrade, revision)

    async def downgrade(self, url: str, revision: str) -> None:
        """Take the service's tables at `url` back to `revision` ("base" drops them all)."""
        await self._run(url, command.downgrade, revision)

    async def current_revision(self, url: str) -> str | None:
        """The revision the database at `url` is at, or None before the first upgrade."""
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as conn:

                def read(sync_conn: Connection) -> str | None:
                    opts = {"version_table": self.version_table}
                    return MigrationContext.configure(sync_conn, opts=opts).get_current_revision()

                return await conn.run_sync(read)
        finally:
            await engine.dispose()

    def head_revision(self) -> str | None:
        """The latest revision shipped with the service's package."""
        return ScriptDirectory.from_config(self.config()).get_current_head()

    async def _run(self, url: str, action: _Command, revision: str) -> None:
        config = self.config(url)
        # A throwaway engine without a pool: migrations run once, and must not leave connections behind.
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with _process_lock(), engine.connect() as conn:
                await take_write_lock(conn, self.lock_key)
                await conn.run_sync(_run_command, config, action, revision)
                await conn.commit()
        finally:
            await engine.dispose()


def _run_command(connection: Connection, config: Config, action: _Command, revision: str) -> None:
    config.attributes[CONNECTION_ATTRIBUTE] = connection
    action(config, revision)


def run_environment(target_metadata: MetaData, version_table: str) -> None:
    """The body of a service's `migrations/env.py`: run the revisions Alembic asks for.

    `Migrations` hands over an open connection (in `config.attributes["connection"]`) on which it
    already holds the migration lock; the `alembic` command line gets an async engine of its own
    from the URL. Either way the revisions are recorded in `version_table`, not in the default
    `alembic_version`, so each service's migrations advance independently in a shared database.
    """
    from alembic import context

    config = context.config

    def configure(**kwargs: object) -> None:
        context.configure(
            target_metadata=target_metadata,
            version_table=version_table,
            compare_type=True,
            # Only this service's tables: another service's in a shared database are not "extra".
            include_name=lambda name, kind, _parent: kind != "table" or name in target_metadata.tables,
            **kwargs,  # type: ignore[arg-type]
        )

    def run(connection: Connection) -> None:
        # SQLite alters tables by copying them ("batch" mode); PostgreSQL alters them in place.
        configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()

    async def run_with_own_engine(url: str) -> None:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(run)
                await connection.commit()
        finally:
            await engine.dispose()

    url = config.attributes.get(URL_ATTRIBUTE) or config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        if not url:
            raise RuntimeError("no database URL: set sqlalchemy.url or pass one to upgrade")
        configure(url=str(url), literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    elif (connection := config.attributes.get(CONNECTION_ATTRIBUTE)) is not None:
        run(connection)
    else:
        if not url:
            raise RuntimeError("no database URL: set sqlalchemy.url or pass one to upgrade")
        asyncio.run(run_with_own_engine(str(url)))
