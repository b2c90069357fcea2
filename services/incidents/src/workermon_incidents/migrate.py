"""Schema migrations of IncidentService, run from code at start-up (no alembic.ini needed).

The Alembic scripts ship inside the package (`workermon_incidents/migrations`); locking and running
them is `workermon_core.migrations`. Incidents may share the collector's and the monitor's database:
their own version table and lock key keep the histories apart. Revision "0001_incidents" creates the
incident tables; the notification tables follow in "0002_notifications".
"""

from __future__ import annotations

from sqlalchemy import MetaData

from workermon_core.migrations import Migrations

from .models import IncidentBase
from .notify import models as notify_models  # noqa: F401 - registers the notification tables on IncidentBase

_VERSION_TABLE = "incidents_alembic_version"
_SCRIPT_LOCATION = "workermon_incidents:migrations"
# Any constant works as long as every incident service uses it and no other service does; it spells
# "wmincidt".
_PG_LOCK_KEY = 0x776D696E63696474

MIGRATIONS = Migrations(_SCRIPT_LOCATION, _VERSION_TABLE, _PG_LOCK_KEY)


def metadata() -> MetaData:
    """The metadata of every incident table, notification tables included (they share IncidentBase)."""
    return IncidentBase.metadata
