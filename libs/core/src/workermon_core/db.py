"""SQL database access for the services that keep history: URL resolution, engines, readiness.

PostgreSQL (psycopg 3) when DATABASE_URL is set, otherwise a SQLite file in the data directory, so a
single machine needs no database server. Both are used through SQLAlchemy 2's asyncio engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from .private_files import DIR_MODE, create_private_file, private_file
from .settings import Settings

SQLITE_FILE = "workermon.db"
# How long a SQLite writer waits for another process's write lock before failing: collectors in two
# processes write the same minute at the same moment, and one must wait for the other, not fail.
SQLITE_BUSY_TIMEOUT_MS = 15_000
# Fail fast when PostgreSQL is unreachable, so readiness flips and RPCs answer UNAVAILABLE promptly.
POSTGRES_CONNECT_TIMEOUT_S = 5

_POSTGRES_ALIASES = ("postgres://", "postgresql://")
_SQLITE_ALIASES = ("sqlite://",)


def normalize_url(url: str) -> str:
    """The URL with the driver the suite uses: postgres(ql):// -> postgresql+psycopg://, sqlite -> aiosqlite.

    URLs that already name a driver are returned unchanged.
    """
    for alias in _POSTGRES_ALIASES:
        if url.startswith(alias):
            return "postgresql+psycopg://" + url[len(alias) :]
    for alias in _SQLITE_ALIASES:
        if url.startswith(alias):
            return "sqlite+aiosqlite://" + url[len(alias) :]
    return url


def database_url(settings: Settings) -> str:
    """DATABASE_URL (normalized), or a SQLite file `workermon.db` in the data directory."""
    if settings.database_url:
        return normalize_url(settings.database_url)
    path = Path(settings.data_dir).expanduser().absolute() / SQLITE_FILE
    return f"sqlite+aiosqlite:///{path}"


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout first: switching to WAL itself needs the lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers run while one process writes, and makes concurrent writers queue on the
        # busy timeout instead of failing; the mode is persistent, setting it again is a no-op.
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL is durable across application crashes and much cheaper than FULL.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An asyncio engine for the URL, tuned per backend; extra keyword arguments go to SQLAlchemy.

    SQLite: the file's directory is created, and every connection uses WAL with a busy timeout.
    PostgreSQL: connections are checked before use (pool_pre_ping), so a database restart costs
    one failed check instead of one failed request per pooled connection.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            _private_sqlite(Path(parsed.database).expanduser())
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", POSTGRES_CONNECT_TIMEOUT_S)
        return create_async_engine(url, connect_args=connect_args, **kwargs)
    return create_async_engine(url, **kwargs)


def _private_sqlite(path: Path) -> None:
    """Create the database file 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
    database file's mode, so the history stays readable by its owner only."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    try:
        create_private_file(path)
    except OSError:
        # Not a file that can be opened (a directory, a lost volume): SQLite says so on connect, as
        # the database being unavailable, not as a crash while the process is being put together.
        return
    for suffix in ("-wal", "-shm", "-journal"):
        private_file(path.with_name(path.name + suffix))


async def ping(engine: AsyncEngine) -> None:
    """Raise when the database does not answer a trivial query (a readiness check).

    Callers bound it with a timeout; the server's readiness watcher does.
    """
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def take_write_lock(conn: AsyncConnection, pg_lock_key: int) -> None:
    """Begin `conn`'s transaction holding a write lock: the advisory lock `pg_lock_key` on PostgreSQL,
    the database write lock on SQLite.

    SQLite's driver opens transactions lazily, as readers (and not at all before DDL); a reader that
    later writes can fail at once with "database is locked" where a writer from the start waits its turn.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": pg_lock_key})
    elif conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


@asynccontextmanager
async def locked_transaction(engine: AsyncEngine, pg_lock_key: int) -> AsyncIterator[AsyncConnection]:
    """A transaction holding the write lock (`take_write_lock`); committed when the block ends cleanly,
    rolled back otherwise."""
    async with engine.connect() as conn:
        await take_write_lock(conn, pg_lock_key)
        try:
            yield conn
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
