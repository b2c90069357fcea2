"""Schema migrations of MonitorService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_monitor/migrations`); locking and running
them is `workermon_core.migrations`, shared with the collector. The monitor may share the collector's
database: its own version table and lock key keep the two histories apart.
"""

from __future__ import annotations

from workermon_core.migrations import Migrations

_VERSION_TABLE = "monitor_alembic_version"
_SCRIPT_LOCATION = "workermon_monitor:migrations"
# Any constant works as long as every monitor uses the same one and no other service does; it
# spells "wmmonitr".
_PG_LOCK_KEY = 0x776D6D6F6E697472

MIGRATIONS = Migrations(_SCRIPT_LOCATION, _VERSION_TABLE, _PG_LOCK_KEY)
