"""workermon_core.db: URL resolution, per-backend engine tuning, readiness ping."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from workermon_core.db import create_engine, database_url, normalize_url, ping
from workermon_core.settings import load_settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("DATABASE_URL", "WORKERMON_DATABASE_URL", "WORKERMON_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_database_url_a_sqlite_file_in_the_data_dir(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("WORKERMON_DATA_DIR", str(tmp_path / "data"))
    assert database_url(load_settings()) == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'workermon.db'}"


def test_relative_data_dir_becomes_absolute(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.chdir(tmp_path)
    assert database_url(load_settings()) == f"sqlite+aiosqlite:///{tmp_path / '.workermon' / 'workermon.db'}"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql+psycopg://u:p@db:5432/wm", "postgresql+psycopg://u:p@db:5432/wm"),
        ("postgresql://u:p@db/wm?sslmode=require", "postgresql+psycopg://u:p@db/wm?sslmode=require"),
        ("postgres://u:p%40ss@db/wm", "postgresql+psycopg://u:p%40ss@db/wm"),
    ],
)
def test_database_url_from_the_environment(clean_env: pytest.MonkeyPatch, given: str, used: str) -> None:
    clean_env.setenv("DATABASE_URL", given)
    assert database_url(load_settings()) == used


def test_normalize_url() -> None:
    assert normalize_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert normalize_url("postgresql+asyncpg://h/d") == "postgresql+asyncpg://h/d"


async def test_sqlite_engine_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "wm.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        async with engine.connect() as conn:
            assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await conn.scalar(text("PRAGMA busy_timeout"))) == 15_000
        await ping(engine)
        assert path.exists()
    finally:
        await engine.dispose()


async def test_postgres_engine_pre_pings(postgres_url: str | None) -> None:
    engine: AsyncEngine = create_engine(postgres_url or "postgresql://postgres@127.0.0.1:1/none")
    try:
        assert engine.pool._pre_ping
        if postgres_url is not None:
            await ping(engine)
    finally:
        await engine.dispose()


async def test_ping_raises_when_the_database_does_not_answer() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:1/none")
    try:
        with pytest.raises(Exception):  # noqa: B017 - the driver's own connection error
            await ping(engine)
    finally:
        await engine.dispose()
