"""Schema migrations of MonitorService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_monitor/migrations`); locking and running
them is `workermon_core.migrations`, shared with the collector. The monitor may share the collector's
database: its own version table and lock key keep the two histories apart.
"""

from __future__ import annotations

from alembic.config import Config

from workermon_core.migrations import Migrations

VERSION_TABLE = "monitor_alembic_version"
SCRIPT_LOCATION = "workermon_monitor:migrations"
# Any constant works as long as every monitor uses the same one and no other service does; it
# spells "wmmonitr".
_PG_LOCK_KEY = 0x776D6D6F6E697472

MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE, _PG_LOCK_KEY)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged scripts (for `command.*` calls and tooling)."""
    return MIGRATIONS.config(url)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the monitor's tables at `url` up to `revision`; concurrent callers take turns."""
    await MIGRATIONS.upgrade(url, revision)


async def downgrade(url: str, revision: str) -> None:
    """Take the monitor's tables at `url` back to `revision` ("base" drops them all)."""
    await MIGRATIONS.downgrade(url, revision)


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first upgrade."""
    return await MIGRATIONS.current_revision(url)


def head_revision() -> str | None:
    """The latest revision shipped with this package."""
    return MIGRATIONS.head_revision()
