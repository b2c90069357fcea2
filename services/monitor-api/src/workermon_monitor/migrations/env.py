"""Alembic environment of MonitorService: its metadata, recorded in `monitor_alembic_version`."""

from __future__ import annotations

from workermon_core.migrations import run_environment
from workermon_monitor.audit.models import AuditBase
from workermon_monitor.migrate import MIGRATIONS

run_environment(AuditBase.metadata, MIGRATIONS.version_table)
