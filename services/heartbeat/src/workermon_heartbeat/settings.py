"""HeartbeatService's settings (environment variables WORKERMON_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class HeartbeatSettings(BaseSettings):
    """How often workers beat, when they count as offline, how long the registry remembers them."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    beat_interval_seconds: float = Field(10.0, ge=1, le=300)
    online_window_seconds: float = Field(30.0, ge=2, le=3600)
    offline_retention_hours: float = Field(24.0, gt=0, le=24 * 30)
    command_ttl_seconds: float = Field(120.0, ge=1, le=3600)
    sweep_interval_seconds: float = Field(1.0, gt=0, le=60)
    worker_events_max: int = Field(10_000, ge=100, le=10_000_000)
    # Per-worker history: one point per minute the worker beat in, the last this many minutes (0: none).
    worker_history_minutes: int = Field(1440, ge=0, le=1440)
    # How often CLIENT LIST is read on the watched Redis to see BullMQ workers without the SDK (0: never).
    connection_scan_seconds: float = Field(5.0, ge=0, le=300)
