"""CollectorService's settings (environment variables WORKERMON_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CollectorSettings(BaseSettings):
    """Retention of minute rows and hourly rollups, and whether this replica runs the schedule."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    # Minute rows, then hourly rollups (which outlive them).
    snapshot_retention_hours: float = Field(24.0, ge=1, le=24 * 90)
    rollup_retention_days: float = Field(30.0, ge=1, le=3660)
    # Run the once-a-minute schedule (taskiq scheduler and receiver) in this process.
    collector_schedule: bool = True
