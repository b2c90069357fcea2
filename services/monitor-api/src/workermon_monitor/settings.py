"""MonitorService's settings (environment variables WORKERMON_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    """Job payload cut-off, how fresh live counts are, how long audit entries are kept."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    # Job data and return values are cut at this size unless the whole value is asked for.
    job_data_max_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    # Live counts are read from Redis at most this often, whatever the number of callers.
    live_max_age_seconds: float = Field(1.0, ge=0.0, le=60)
    audit_retention_days: float = Field(90.0, ge=1, le=3660)
    # A bulk action (retry, promote, remove) may select at most this many jobs.
    bulk_max_jobs: int = Field(10_000, ge=1, le=1_000_000)
    # An export holds at most this many jobs and about this many bytes.
    export_max_jobs: int = Field(100_000, ge=1, le=10_000_000)
    export_max_bytes: int = Field(64 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
