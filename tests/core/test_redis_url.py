"""redis+sentinel:// and redis+cluster:// URLs: what they name, and the errors that name the setting and the
part of the URL."""

from __future__ import annotations

import pytest

from workermon_core.settings import ConfigError, Settings, load
from workermon_queues.settings import QueueSettings
from workermon_redis_url import (
    ClusterUrl,
    SentinelUrl,
    check_redis_url,
    parse_cluster_url,
    parse_sentinel_url,
    redact,
)


def test_every_part() -> None:
    url = "redis+sentinel://app:p%40ss@s1:26380,[::1]:26381,s3/wm/2?sentinel_password=sp&sentinel_username=su"
    assert parse_sentinel_url(url) == SentinelUrl(
        sentinels=(("s1", 26380), ("::1", 26381), ("s3", 26379)),
        master="wm",
        db=2,
        username="app",
        password="p@ss",
        sentinel_username="su",
        sentinel_password="sp",
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://h:1/wm", SentinelUrl((("h", 1),), "wm")),
        ("redis+sentinel://h/wm/", SentinelUrl((("h", 26379),), "wm")),
        ("redis+sentinel://:secret@h:1/wm", SentinelUrl((("h", 1),), "wm", password="secret")),
        ("redis+sentinel://h:1/wm?password=a%26b", SentinelUrl((("h", 1),), "wm", password="a&b")),
    ],
)
def test_short_forms(url: str, expected: SentinelUrl) -> None:
    assert parse_sentinel_url(url) == expected


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("redis+sentinel:///wm", "sentinels: none given"),
        ("redis+sentinel://h:1,,h:2/wm", "sentinels: an empty entry"),
        ("redis+sentinel://h:x/wm", "sentinel 'h:x': the port must be a number"),
        ("redis+sentinel://h:70000/wm", "sentinel 'h:70000': the port must be a number"),
        ("redis+sentinel://::1:5/wm", "an IPv6 address is written"),
        ("redis+sentinel://[::1/wm", "an IPv6 address is written"),
        ("redis+sentinel://:1/wm", "sentinel ':1': no host"),
        ("redis+sentinel://h:1", "master name: missing"),
        ("redis+sentinel://h:1/", "master name: missing"),
        ("redis+sentinel://h:1/wm/x", "db: must be a whole number"),
        ("redis+sentinel://h:1/wm/0/extra", "path: expected /<master name>"),
        ("redis+sentinel://h:1/wm?ssl=true", "query key 'ssl': unknown"),
        ("redis+sentinel://h:1/wm?password=a&password=b", "query key 'password': given more than once"),
        ("redis+sentinel://:a@h:1/wm?password=b", "password: given both"),
        ("redis+sentinel://h:1/wm?sentinel_password", "query: expected key=value"),
        ("redis+sentinel://h:1/wm#x", "fragment"),
        ("redis+sentinels://h:1/wm", "must start with redis://"),
        ("redis+cluster://", "cluster nodes: none given"),
        ("redis+cluster://h:1,,h:2", "cluster nodes: an empty entry"),
        ("redis+cluster://h:0", "cluster node 'h:0': the port must be a number"),
        ("redis+cluster://h:1/0", "path: a cluster has only database 0"),
        ("redis+cluster://h:1?sentinel_password=x", "query key 'sentinel_password': unknown"),
    ],
)
def test_errors_name_the_part(url: str, part: str) -> None:
    with pytest.raises(ValueError, match=part.replace("[", r"\[").replace("(", r"\(")):
        check_redis_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+cluster://h", ClusterUrl((("h", 6379),))),
        ("redis+cluster://a:7000,[::1]:7001,c/", ClusterUrl((("a", 7000), ("::1", 7001), ("c", 6379)))),
        ("redis+cluster://u:p%40ss@a:7000", ClusterUrl((("a", 7000),), username="u", password="p@ss")),
        ("redis+cluster://a:7000?password=pw", ClusterUrl((("a", 7000),), password="pw")),
    ],
)
def test_cluster_urls(url: str, expected: ClusterUrl) -> None:
    assert parse_cluster_url(url) == expected
    assert check_redis_url(url) == url


def test_settings_take_a_cluster_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERMON_REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis+cluster://a:7000")
    monkeypatch.setenv("WORKERMON_QUEUE_REDIS_URL", "redis+cluster://a:7000,b:7001")
    assert load(Settings).redis_url == "redis+cluster://a:7000"
    assert load(QueueSettings).queue_redis_url == "redis+cluster://a:7000,b:7001"
    monkeypatch.setenv("REDIS_URL", "redis+cluster://a:7000/1")
    with pytest.raises(ConfigError, match=r"REDIS_URL: path: a cluster has only database 0"):
        load(Settings)


def test_plain_urls_go_to_redis_py_as_they_are() -> None:
    for url in ("redis://h:1/0", "rediss://:pw@h:1/0", "unix:///tmp/redis.sock"):
        assert check_redis_url(url) == url


def test_redact_hides_passwords_only() -> None:
    assert redact("redis+sentinel://u:secret@h:1,h:2/wm?sentinel_password=s2&x=1") == (
        "redis+sentinel://u:***@h:1,h:2/wm?sentinel_password=***&x=1"
    )
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact("redis://h:1/0?password=pw") == "redis://h:1/0?password=***"
    assert redact("redis://h:1/0") == "redis://h:1/0"


@pytest.mark.parametrize(
    ("model", "env"),
    [
        (Settings, "REDIS_URL"),
        (Settings, "WORKERMON_REDIS_URL"),
        (QueueSettings, "WORKERMON_QUEUE_REDIS_URL"),
    ],
)
def test_settings_name_the_variable_and_the_part_without_the_password(
    monkeypatch: pytest.MonkeyPatch, model: type[Settings] | type[QueueSettings], env: str
) -> None:
    for name in ("REDIS_URL", "WORKERMON_REDIS_URL", "WORKERMON_QUEUE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(env, "redis+sentinel://:hunter2@s1:26379,s2:x/wm?sentinel_password=hunter3")
    with pytest.raises(ConfigError) as caught:
        load(model)
    message = str(caught.value)
    named = "REDIS_URL" if env == "WORKERMON_REDIS_URL" else env  # pydantic reports the first alias
    assert message.startswith(
        f"invalid configuration: {named}: sentinel 's2:x': the port must be a number from 1 to 65535"
    ), message
    assert "hunter" not in message, message


def test_settings_take_a_sentinel_url(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "redis+sentinel://s1:26379,s2:26379,s3:26379/wm/0"
    monkeypatch.setenv("REDIS_URL", url)
    monkeypatch.setenv("WORKERMON_QUEUE_REDIS_URL", url)
    assert load(Settings).redis_url == url
    assert load(QueueSettings).queue_redis_url == url
