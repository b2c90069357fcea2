"""Settings fail fast and name the variable, whichever settings class reads it."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from workermon_cli import registry
from workermon_core.settings import ConfigError, Settings, load, load_settings
from workermon_heartbeat.settings import HeartbeatSettings
from workermon_incidents.settings import IncidentSettings
from workermon_queues.settings import QueueSettings


@pytest.mark.parametrize(
    ("model", "env", "value"),
    [
        (Settings, "WORKERMON_GRPC_PORT", "70000"),
        (Settings, "WORKERMON_GRPC_PORT", "abc"),
        (Settings, "REDIS_URL", "http://nope"),
        (Settings, "WORKERMON_REDIS_PREFIX", "has space"),
        (Settings, "WORKERMON_LOG_LEVEL", "loud"),
        (HeartbeatSettings, "WORKERMON_ONLINE_WINDOW_SECONDS", "0"),
        (QueueSettings, "WORKERMON_BACKLOG_THRESHOLDS", "emails=many"),
        (QueueSettings, "WORKERMON_FAILURE_RULES", '[{"pattern": "(", "category": "x"}]'),
        (IncidentSettings, "WORKERMON_INCIDENT_RULES", '{"emails": {"colour": 1}}'),
        (IncidentSettings, "WORKERMON_NOTIFY_CHANNELS", '[{"type": "slack"}]'),
    ],
)
def test_bad_value_names_variable(
    monkeypatch: pytest.MonkeyPatch, model: type[BaseSettings], env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=r"^invalid configuration: ") as caught:
        load(model)
    assert env in str(caught.value)


def test_json_values_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERMON_FAILURE_RULES", '[{"pattern": "x", "category": "ok"}, "nope"]')
    with pytest.raises(ConfigError, match=r"WORKERMON_FAILURE_RULES: \[1\]: expected an object"):
        load(QueueSettings)
    monkeypatch.setenv("WORKERMON_INCIDENT_RULES", '{"emails": {"colour": 1}}')
    with pytest.raises(ConfigError, match=r"WORKERMON_INCIDENT_RULES: emails\.colour: unknown key"):
        load(IncidentSettings)


def test_every_setting_has_one_owner() -> None:
    # A variable read by two classes must mean the same thing; only the beat interval is shared on purpose.
    owners: dict[str, list[str]] = {}
    models = {Settings, *(m for module in registry.MODULES for m in module.settings)}
    for model in models:
        for name in model.model_fields:
            owners.setdefault(name, []).append(model.__name__)
    shared = {name: sorted(who) for name, who in owners.items() if len(who) > 1}
    assert shared == {"beat_interval_seconds": ["HeartbeatSettings", "IncidentSettings"]}


def test_defaults_need_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "DATABASE_URL", "WORKERMON_REDIS_URL", "WORKERMON_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.grpc_address == "127.0.0.1:50051"
    assert str(settings.data_dir) == ".workermon"
