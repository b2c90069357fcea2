"""Schema migrations of CollectorService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_collector/migrations`); locking and running
them is `workermon_core.migrations`, shared with the other services that keep tables.
"""

from __future__ import annotations

from alembic.config import Config

from workermon_core.migrations import Migrations

VERSION_TABLE = "collector_alembic_version"
SCRIPT_LOCATION = "workermon_collector:migrations"
# Any constant works as long as every collector uses the same one; it spells "wmcollec".
_PG_LOCK_KEY = 0x776D636F6C6C6563

MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE, _PG_LOCK_KEY)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged scripts (for `command.*` calls and tooling)."""
    return MIGRATIONS.config(url)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the collector's tables at `url` up to `revision` (default: the latest).

    Safe to run from several processes at once: they take turns, and the later ones find nothing to do.
    """
    await MIGRATIONS.upgrade(url, revision)


async def downgrade(url: str, revision: str) -> None:
    """Take the collector's tables at `url` back to `revision` ("base" drops them all)."""
    await MIGRATIONS.downgrade(url, revision)


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first upgrade."""
    return await MIGRATIONS.current_revision(url)


def head_revision() -> str | None:
    """The latest revision shipped with this package."""
    return MIGRATIONS.head_revision()
