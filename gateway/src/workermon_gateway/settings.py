"""The gateway's settings (environment variables WORKERMON_*); where it listens is the process's
(WORKERMON_HTTP_HOST / WORKERMON_HTTP_PORT)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workermon_core.targets import channel_target


class GatewaySettings(BaseSettings):
    """Base path, where the services are, CORS, login, the admin UI and the live stream."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    # Everything the gateway serves is under this path, so a host application can mount it anywhere.
    base_path: str = "/api"
    # Where the gateway reaches the gRPC services (one host:port, ip:port replicas, or dns:///name:port);
    # default: WORKERMON_MONITOR_TARGET, else this process's own gRPC address.
    gateway_target: str | None = None
    # Comma-separated origins allowed to call the API from a browser (CORS); empty: same origin only.
    cors_origins: str = ""
    # Users who may log in (argon2 hashes), managed with `workermon user add`; default <data dir>/users.json.
    users_file: Path | None = None
    # The first admin's password when `workermon up` creates it (unattended installs); else generated
    # and shown once on the terminal. Held to the password policy.
    first_admin_password: SecretStr | None = None
    # Access tokens from login are short-lived; the admin UI renews them with the refresh cookie, which
    # lasts this long from the last renewal (a wall dashboard stays logged in while it is open).
    token_ttl_seconds: float = Field(900.0, ge=60, le=86_400)
    refresh_token_ttl_seconds: float = Field(7 * 86_400.0, ge=300, le=30 * 86_400)
    login_attempts_per_minute: int = Field(10, ge=1, le=10_000)
    # Built admin UI to serve; default ./admin/dist when it exists.
    admin_ui_dir: Path | None = None
    stream_overview_interval_seconds: float = Field(2.0, ge=0.2, le=60)
    stream_replay_seconds: float = Field(300.0, ge=10, le=86_400)
    # /metrics labels queues MonitorService lists, and at most this many other names workers report.
    metrics_max_unlisted_queues: int = Field(50, ge=0, le=10_000)
    # The signing secret of a PagerDuty v3 webhook subscription (comma-separated during a rotation): enables
    # POST {base}/v1/integrations/pagerduty/webhook, which applies acknowledgements and resolutions made in
    # PagerDuty to the incidents they are about.
    pagerduty_webhook_secret: SecretStr | None = None

    @field_validator("gateway_target")
    @classmethod
    def _check_target(cls, value: str | None) -> str | None:
        if value:
            channel_target(value)  # ValueError naming what is wrong
        return value or None

    @field_validator("base_path")
    @classmethod
    def _check_base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and (not value.startswith("/") or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value)):
            raise ValueError("must be empty or a path such as /api or /admin/worker-monitor")
        return value
