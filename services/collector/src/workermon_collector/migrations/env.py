"""Alembic environment of CollectorService: its metadata, recorded in `collector_alembic_version`."""

from __future__ import annotations

from workermon_collector.migrate import MIGRATIONS
from workermon_collector.models import Base
from workermon_core.migrations import run_environment

run_environment(Base.metadata, MIGRATIONS.version_table)
