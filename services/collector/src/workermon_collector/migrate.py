"""Schema migrations of CollectorService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_collector/migrations`); locking and running
them is `workermon_core.migrations`, shared with the other services that keep tables.
"""

from __future__ import annotations

from workermon_core.migrations import Migrations

_VERSION_TABLE = "collector_alembic_version"
_SCRIPT_LOCATION = "workermon_collector:migrations"
# Any constant works as long as every collector uses the same one; it spells "wmcollec".
_PG_LOCK_KEY = 0x776D636F6C6C6563

MIGRATIONS = Migrations(_SCRIPT_LOCATION, _VERSION_TABLE, _PG_LOCK_KEY)
