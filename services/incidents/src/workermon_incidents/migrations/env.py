"""Alembic environment of IncidentService: its metadata, recorded in `incidents_alembic_version`."""

from __future__ import annotations

from workermon_core.migrations import run_environment
from workermon_incidents.migrate import MIGRATIONS, metadata

run_environment(metadata(), MIGRATIONS.version_table)
