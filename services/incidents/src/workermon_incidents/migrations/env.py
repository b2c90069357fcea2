"""Alembic environment of IncidentService: its metadata, recorded in `incidents_alembic_version`."""

from __future__ import annotations

from workermon_core.migrations import run_environment
from workermon_incidents.migrate import VERSION_TABLE, metadata

run_environment(metadata(), VERSION_TABLE)
