"""deploy/compose against the code it deploys: the targets it runs and how many of each, the peers'
targets, the settings it sets, start order, what is published, secrets; its healthchecks run against a
real suite; and check_compose.py (`make lint`) finding what it should."""

from __future__ import annotations

import asyncio
import copy
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY, SECRETS, environment, replicas, suite_containers, target_of
from tests.support.gateway import Gateway
from workermon_cli import registry
from workermon_core.settings import ConfigError, Settings, env_name, load
from workermon_core.targets import channel_target


def containers_by_target(compose: dict[str, Any]) -> dict[str, list[str]]:
    """The compose services running each target."""
    found: dict[str, list[str]] = {}
    for name, service in suite_containers(compose).items():
        target = target_of(service)
        if target is not None:
            found.setdefault(target, []).append(name)
    return found


def test_each_target_runs_in_containers_of_its_own(compose: dict[str, Any]) -> None:
    by_target = containers_by_target(compose)
    assert set(by_target) == set(registry.BY_NAME), "every target of the registry, and only those"
    assert all(len(names) == 1 and names[0] == target for target, names in by_target.items()), by_target
    assert Counter({t: replicas(compose["services"][t]) for t in by_target}) == Counter(
        heartbeat=2, collector=2, monitor=1, incidents=1, gateway=1
    )
    migrate = compose["services"]["migrate"]
    assert migrate["entrypoint"] == ["workermon", "migrate"] and migrate["restart"] == "no"


def test_every_peer_target_names_the_service_running_it(compose: dict[str, Any]) -> None:
    """WORKERMON_<X>_TARGET is dns:///<x>:50051: the compose name of the service running target x,
    which resolves to every replica of it, on the port those containers listen on."""
    fields = [field for field in Settings.model_fields if field.endswith("_target")]
    assert sorted(fields) == sorted(f"{name}_target" for name in registry.SERVICES)
    by_target = containers_by_target(compose)
    for name, service in suite_containers(compose).items():
        env = environment(service)
        for field in fields:
            target = field.removesuffix("_target")
            value = env.get(env_name(field))
            assert value == f"dns:///{by_target[target][0]}:50051", (name, field, value)
            assert channel_target(value) == (value, True), "balanced over the replicas"
        if target_of(service) in registry.SERVICES:
            assert (env["WORKERMON_GRPC_HOST"], env["WORKERMON_GRPC_PORT"]) == ("0.0.0.0", "50051")
    # No WORKERMON_GATEWAY_TARGET: the gateway reaches each service at that service's own target.
    assert "WORKERMON_GATEWAY_TARGET" not in environment(compose["services"]["gateway"])


def test_every_setting_the_file_sets_exists_and_is_valid(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    models = [Settings, *{model for module in registry.MODULES for model in module.settings}]
    known = {env_name(field, model) for model in models for field in model.model_fields}
    for name, service in suite_containers(compose).items():
        env = environment(service)
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets variables no setting reads: {unknown}"
        with monkeypatch.context() as patch:
            for variable, value in env.items():
                patch.setenv(variable, value)
            for model in models:
                try:
                    load(model)
                except ConfigError as exc:  # pragma: no cover - the failure message is the point
                    pytest.fail(f"{name}: {exc}")


def test_start_order_follows_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    healthy, done = {"condition": "service_healthy"}, {"condition": "service_completed_successfully"}
    for name in ("redis", "postgres"):
        assert services[name]["healthcheck"]["test"][0] == "CMD"
    assert services["migrate"]["depends_on"] == {"postgres": healthy}
    for name in registry.SERVICES:
        assert services[name]["depends_on"] == {"redis": healthy, "postgres": healthy, "migrate": done}
        assert services[name]["healthcheck"] == services["heartbeat"]["healthcheck"]
    # The gateway reads and writes token revocations in the suite's Redis.
    assert services["gateway"]["depends_on"] == {
        "redis": healthy,
        **dict.fromkeys(registry.SERVICES, healthy),
    }
    assert services["grafana"]["depends_on"] == {"prometheus": healthy}


def test_redis_keeps_every_job(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_only_the_gateway_is_published_and_on_loopback_unless_told(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose["services"].items() if s.get("ports")}
    assert set(published) == {"gateway", "prometheus", "grafana"}
    assert published["gateway"] == ["127.0.0.1:8080:8080"]
    assert published["prometheus"] == ["127.0.0.1:9090:9090"]
    assert published["grafana"] == ["127.0.0.1:3000:3000"]
    assert compose["services"]["gateway"]["networks"] == ["suite", "monitoring"]
    assert compose["services"]["prometheus"]["networks"] == ["monitoring"]


def test_secrets_come_only_from_the_env_file(check_compose: Any, compose: dict[str, Any]) -> None:
    text = check_compose.COMPOSE_FILE.read_text()
    listed = check_compose.env_example()
    for secret in SECRETS:
        assert listed[secret] == "", f".env.example must leave {secret} empty"
        uses = re.findall(r"\$\{" + secret + r"(:\?[^}]*)?\}", text)
        assert uses and all(uses), f"{secret} must be required (${{{secret}:?...}}) wherever it is used"
    assert ".env" in (DEPLOY / "compose" / ".gitignore").read_text().split()
    gateway_env = environment(compose["services"]["gateway"])
    assert "DATABASE_URL" not in gateway_env, "the gateway needs no database password"


def test_prometheus_and_grafana_are_wired_to_the_files_they_need(compose: dict[str, Any]) -> None:
    prometheus_config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus_config["scrape_configs"]
    assert job["job_name"] == "workermon" and job["static_configs"] == [{"targets": ["gateway:8080"]}]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "../prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    assert prometheus_config["rule_files"] == ["alerts.yml"]
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "workermon.yaml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["uid"] == "workermon-prometheus"
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "workermon.yaml").read_text()
    )["providers"][0]
    assert (
        f"../grafana/dashboards:{provider['options']['path']}:ro" in compose["services"]["grafana"]["volumes"]
    )


def _healthcheck_code(compose: dict[str, Any], name: str) -> str:
    test = compose["services"][name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    return str(test[3])


async def _runs(code: str) -> int:
    """Exit status of `python -c code` (without blocking the loop the suite under test answers on)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_healthchecks_pass_on_a_running_suite_and_fail_without_one(
    compose: dict[str, Any], gateway: Gateway
) -> None:
    grpc_check = _healthcheck_code(compose, "heartbeat")
    http_check = _healthcheck_code(compose, "gateway")
    assert "127.0.0.1:50051" in grpc_check and "http://127.0.0.1:8080/readyz" in http_check
    assert await _runs(grpc_check.replace("127.0.0.1:50051", gateway.suite.grpc_target)) == 0
    assert await _runs(http_check.replace("http://127.0.0.1:8080", gateway.url)) == 0
    assert await _runs(grpc_check.replace("127.0.0.1:50051", "127.0.0.1:1")) != 0
    assert await _runs(http_check.replace("127.0.0.1:8080", "127.0.0.1:1")) != 0


def test_check_compose_passes_on_the_file(check_compose: Any) -> None:
    assert check_compose.main() == 0


def test_check_compose_finds_what_is_wrong(
    check_compose: Any, compose: dict[str, Any], tmp_path: Path
) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["monitor"]["depends_on"]["migrate"]["condition"] = "service_done"
    broken["services"]["monitor"]["healthcheck"]["intervall"] = "5s"
    problems = check_compose.check_schema(broken)
    assert any("services/monitor/depends_on" in p for p in problems)
    assert any("services/monitor/healthcheck" in p for p in problems)

    broken = copy.deepcopy(compose)
    broken["services"]["redis"]["volumes"] = ["redis-dta:/data", "./missing.conf:/etc/x.conf:ro"]
    broken["services"]["gateway"]["depends_on"]["heartbeat-3"] = {"condition": "service_healthy"}
    broken["services"]["gateway"]["networks"] = ["suite", "elsewhere"]
    assert sorted(check_compose.check_references(broken)) == [
        "gateway: depends_on names no service: heartbeat-3",
        "gateway: network elsewhere is not declared",
        "redis: mounts ./missing.conf, which does not exist",
        "redis: volume redis-dta is not declared",
    ]

    assert check_compose.check_env("a: ${LISTED}\nb: ${NEW:-x}\nc: $${NOT_ONE}", {"LISTED": ""}) == [
        ".env.example does not list NEW"
    ]
    assert (
        check_compose.interpolate("a: ${A:-x}/${B-y}/${C:+z}/$$", {"A": "", "B": "", "C": "1"}) == "a: x//z/$"
    )
    with pytest.raises(ValueError, match="SECRET: set it"):
        check_compose.interpolate("a: ${SECRET:?set it}", {"SECRET": ""})
    env = tmp_path / ".env.example"
    env.write_text("# comment\nSET=1\n#OPTIONAL=default\n")
    assert check_compose.env_example(env) == {"SET": "1", "OPTIONAL": ""}
