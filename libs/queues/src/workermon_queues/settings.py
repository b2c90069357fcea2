"""What the queue library is configured with: the watched Redis, its prefix, which queues, failure rules,
and per-queue options (backlog thresholds, display names). Parsed once, here."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workermon_redis_url import check_redis_url

from .classify import FailureClassifier, parse_rules


class QueueSettings(BaseSettings):
    """The watched BullMQ Redis and how its queues are read; environment variables WORKERMON_*."""

    model_config = SettingsConfigDict(env_prefix="WORKERMON_", extra="ignore", frozen=True)

    # The BullMQ Redis being watched (redis+sentinel:// too); default: the suite's own Redis.
    queue_redis_url: str | None = None
    queue_prefix: str = "bull"
    # Comma-separated queue names to watch in addition to (or, without discovery, instead of) SCAN.
    queues: str = ""
    discover_queues: bool = True
    # JSON list of {"pattern": regex, "category": name}, tried before the built-in rules.
    failure_rules: str = ""
    # A queue is DEGRADED (and QUEUE_BACKLOG may fire) above this many waiting jobs; per queue as
    # "queue=threshold,...".
    backlog_threshold: int = Field(200, ge=1, le=1_000_000_000)
    backlog_thresholds: str = ""
    # Names to show for queues, as "queue=Display name,...".
    queue_display_names: str = ""

    @field_validator("queue_redis_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return check_redis_url(value) if value else None

    @field_validator("failure_rules")
    @classmethod
    def _check_rules(cls, value: str) -> str:
        parse_rules(value)
        return value

    @field_validator("backlog_thresholds")
    @classmethod
    def _check_thresholds(cls, value: str) -> str:
        for name, threshold in pairs(value).items():
            if not threshold.isdigit() or int(threshold) < 1:
                raise ValueError(f"{name}: must be a positive whole number, not {threshold!r}")
        return value

    @field_validator("queue_display_names")
    @classmethod
    def _check_names(cls, value: str) -> str:
        pairs(value)
        return value

    @cached_property
    def queue_names(self) -> list[str]:
        """The configured queue names (WORKERMON_QUEUES), in order, without blanks."""
        return [name.strip() for name in self.queues.split(",") if name.strip()]

    @cached_property
    def classifier(self) -> FailureClassifier:
        """The failure classifier: configured rules first, then the built-in ones."""
        return FailureClassifier(parse_rules(self.failure_rules))

    @cached_property
    def queue_backlog_thresholds(self) -> dict[str, int]:
        """Per-queue backlog thresholds from WORKERMON_BACKLOG_THRESHOLDS."""
        return {name: int(value) for name, value in pairs(self.backlog_thresholds).items()}

    @cached_property
    def display_names(self) -> dict[str, str]:
        """Per-queue display names from WORKERMON_QUEUE_DISPLAY_NAMES."""
        return pairs(self.queue_display_names)


def pairs(text: str) -> dict[str, str]:
    """'a=1, b=2' as {'a': '1', 'b': '2'}; ValueError naming the first malformed item."""
    found: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"{item.strip()!r} is not name=value")
        found[name.strip()] = value.strip()
    return found
