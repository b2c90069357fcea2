"""Settings fail fast and name the variable."""

from __future__ import annotations

import pytest

from workermon_core.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("WORKERMON_GRPC_PORT", "70000", "WORKERMON_GRPC_PORT"),
        ("WORKERMON_GRPC_PORT", "abc", "WORKERMON_GRPC_PORT"),
        ("REDIS_URL", "http://nope", "REDIS_URL"),
        ("WORKERMON_REDIS_PREFIX", "has space", "WORKERMON_REDIS_PREFIX"),
        ("WORKERMON_LOG_LEVEL", "loud", "WORKERMON_LOG_LEVEL"),
        ("WORKERMON_ONLINE_WINDOW_SECONDS", "0", "WORKERMON_ONLINE_WINDOW_SECONDS"),
    ],
)
def test_bad_value_names_variable(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert named in str(caught.value)
    assert value in str(caught.value)


def test_defaults_need_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "DATABASE_URL", "WORKERMON_REDIS_URL", "WORKERMON_GRPC_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.grpc_address == "127.0.0.1:50051"
    assert str(settings.data_dir) == ".workermon"
