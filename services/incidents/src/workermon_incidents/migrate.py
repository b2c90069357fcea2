"""Schema migrations of IncidentService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_incidents/migrations`); locking and running
them is `workermon_core.migrations`. Incidents may share the collector's and the monitor's database:
their own version table and lock key keep the histories apart. Revision "0001_incidents" creates the
incident tables; the notification tables follow in "0002_notifications".
"""

from __future__ import annotations

import importlib

from alembic.config import Config
from sqlalchemy import MetaData

from workermon_core.migrations import Migrations

from .models import IncidentBase

VERSION_TABLE = "incidents_alembic_version"
SCRIPT_LOCATION = "workermon_incidents:migrations"
# Any constant works as long as every incident service uses it and no other service does; it spells
# "wmincidt".
_PG_LOCK_KEY = 0x776D696E63696474

MIGRATIONS = Migrations(SCRIPT_LOCATION, VERSION_TABLE, _PG_LOCK_KEY)


def metadata() -> MetaData:
    """The metadata of every incident table, the notification tables included when they exist.

    The notification models share IncidentBase; importing them registers their tables.
    """
    try:
        importlib.import_module("workermon_incidents.notify_models")
    except ModuleNotFoundError as exc:
        if exc.name != "workermon_incidents.notify_models":
            raise
    return IncidentBase.metadata


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged scripts (for `command.*` calls and tooling)."""
    return MIGRATIONS.config(url)


async def upgrade(url: str, revision: str = "head") -> None:
    """Bring the incident tables at `url` up to `revision`; concurrent callers take turns."""
    await MIGRATIONS.upgrade(url, revision)


async def downgrade(url: str, revision: str) -> None:
    """Take the incident tables at `url` back to `revision` ("base" drops them all)."""
    await MIGRATIONS.downgrade(url, revision)


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at, or None before the first upgrade."""
    return await MIGRATIONS.current_revision(url)


def head_revision() -> str | None:
    """The latest revision shipped with this package."""
    return MIGRATIONS.head_revision()
