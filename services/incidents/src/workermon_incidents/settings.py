"""IncidentService's settings (environment variables WORKERMON_*): rule defaults, per-queue overrides and
notification channels, the last two JSON values validated here, when the settings are read."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from .notify.channels import Channel


class IncidentSettings(BaseSettings):
    """Rule defaults (each overridable per queue in WORKERMON_INCIDENT_RULES) and notifications."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    incident_eval_interval_seconds: float = Field(60.0, ge=1, le=3600)
    failure_rate_threshold: float = Field(0.05, gt=0, le=1)
    failure_rate_window_minutes: int = Field(10, ge=1, le=1440)
    failure_rate_min_jobs: int = Field(20, ge=1, le=1_000_000)
    failure_rate_pending_minutes: float = Field(1.0, ge=0, le=1440)
    backlog_pending_minutes: float = Field(5.0, ge=0, le=1440)
    stuck_minutes: float = Field(10.0, ge=1, le=1440)
    # Workers beat this often (HeartbeatService reads the same variable); down after this many misses.
    beat_interval_seconds: float = Field(10.0, ge=1, le=300)
    worker_down_missed_beats: int = Field(4, ge=1, le=1000)
    slow_processing_factor: float = Field(3.0, ge=1, le=1000)
    slow_processing_floor_ms: float = Field(1000.0, ge=0, le=86_400_000)
    slow_processing_baseline_minutes: int = Field(30, ge=5, le=1440)
    slow_processing_pending_minutes: float = Field(5.0, ge=0, le=1440)
    stats_stale_minutes: float = Field(5.0, ge=1, le=1440)
    # An open incident resolves only after its condition has been clear this long (no flapping).
    incident_quiet_minutes: float = Field(5.0, ge=0, le=1440)
    # JSON: {"<queue>": {"failure_rate_threshold": 0.2, "backlog_threshold": 1000, ...}}.
    incident_rules: str = ""
    # Notification channels as JSON (a list of channel objects; see docs/incidents.md), or a file.
    notify_channels: str = ""
    notify_channels_file: Path | None = None
    # While an incident stays unacknowledged, notify again this often (0: never).
    notify_repeat_hours: float = Field(4.0, ge=0, le=24 * 30)
    # At start, transitions of this many last minutes decided NOTIFIED are submitted again, for those
    # committed just before a crash (already recorded deliveries are not repeated); 0: no replay.
    notify_replay_minutes: float = Field(60.0, ge=0, le=7 * 24 * 60)

    _rule_overrides: dict[str, dict[str, Any]] = PrivateAttr(default_factory=dict)
    _channels: list[Channel] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _parse_json_values(self) -> IncidentSettings:
        # Parsed once, at start: a bad value stops the process with a ConfigError naming the key.
        from .notify.channels import load_channels
        from .rules import parse_overrides

        self._rule_overrides = parse_overrides(self.incident_rules)
        self._channels = load_channels(self)
        return self

    @property
    def rule_overrides(self) -> dict[str, dict[str, Any]]:
        """WORKERMON_INCIDENT_RULES, validated key by key."""
        return self._rule_overrides

    @property
    def channels(self) -> list[Channel]:
        """The notification channels of WORKERMON_NOTIFY_CHANNELS or WORKERMON_NOTIFY_CHANNELS_FILE."""
        return list(self._channels)
