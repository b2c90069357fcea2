"""Shared fixtures: a real Redis (REDIS_URL, or an embedded one), isolated key prefixes, tokens, and
empty SQL databases of each backend.

Database tests run on SQLite and on PostgreSQL, each in a place of its own. PostgreSQL comes from
DATABASE_URL when it names one, else postgresql://postgres@127.0.0.1:5432/test. When it does not
answer, its half of the tests is skipped, unless CI_REQUIRE_POSTGRES=1, which makes that an error:
CI must never pass by silently testing SQLite alone.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.support.bull import delete_suite_keys
from tests.support.fakes import TEST_SECRET, FakeClock
from workermon_core.auth import TokenAuthority
from workermon_core.db import create_engine, normalize_url
from workermon_core.redis_store import EmbeddedRedis, connect

# Test-harness variables, not settings of the suite: where Chromium is.
_KEPT = {"WORKERMON_CHROMIUM"}


def pytest_configure(config: pytest.Config) -> None:
    """Tests are hermetic: no WORKERMON_* setting of the caller's shell reaches a test."""
    for name in [n for n in os.environ if n.startswith("WORKERMON_") and n not in _KEPT]:
        del os.environ[name]


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (CI points it at the machine's Redis), else a private embedded Redis."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of its own per test, so tests sharing one Redis never see each other's keys; the
    suite's keys under it are deleted afterwards, so a developer's Redis keeps nothing of the run."""
    name = "wmtest-" + uuid.uuid4().hex[:12]
    yield name
    client = connect(redis_url)
    try:
        await delete_suite_keys(client, name)
    finally:
        await client.aclose()


@pytest.fixture
def authority() -> TokenAuthority:
    return TokenAuthority(TEST_SECRET)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


# --- SQL databases --------------------------------------------------------------------------------

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def postgres_url_from_env() -> str:
    """DATABASE_URL when it is a PostgreSQL URL, else the local default."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql")):
        return normalize_url(configured)
    return DEFAULT_POSTGRES_URL


def with_search_path(url: str, schema: str) -> str:
    """The URL with `schema` first on the search path: tables and Alembic's version table land there."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    if isinstance(options, tuple):
        options = " ".join(options)
    options = f"{options} -csearch_path={schema}".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    """The PostgreSQL URL when the server answers; None (or a failure under CI_REQUIRE_POSTGRES=1).

    Synchronous on purpose: fixtures ask for it lazily from inside the running event loop.
    """
    url = postgres_url_from_env()
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not available"
        if os.environ.get("CI_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CI_REQUIRE_POSTGRES=1 but PostgreSQL at {url} does not answer: {exc!r}")
        return None
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each backend: a SQLite file in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'workermon.db'}"
        return
    # Asked for only here, so SQLite tests neither wait for nor fail on a missing PostgreSQL.
    postgres_url: str | None = request.getfixturevalue("postgres_url")
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    async with postgres_schema(postgres_url) as url:
        yield url


@contextlib.asynccontextmanager
async def postgres_schema(postgres_url: str, prefix: str = "wm_") -> AsyncIterator[str]:
    """A fresh PostgreSQL schema (dropped afterwards): the URL with it first on the search path."""
    schema = prefix + uuid.uuid4().hex[:16]
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield with_search_path(postgres_url, schema)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def db_backend(database_url: str) -> str:
    """ "sqlite" or "postgresql": the backend of this test's database."""
    return make_url(database_url).get_backend_name()
