"""The Kubernetes manifests, as each overlay renders them, hold to the suite's own description of itself.

Every overlay of deploy/k8s is rendered with `kubectl kustomize` (the function `make lint` uses, which
also validates the schemas) and parsed with PyYAML; what each Deployment runs, may reach and is
reached by is compared with the registry of modules and their `Needs`, so a service that gains a peer
or a dependency fails here until its manifests follow.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.validate_k8s import overlays, render
from workermon_cli import registry
from workermon_core.modules import Module, Needs
from workermon_core.server import LIVENESS_SERVICE
from workermon_core.settings import Settings, env_name

if not (os.environ.get("KUBECTL") or shutil.which("kubectl")):
    pytest.skip("kubectl is needed to render deploy/k8s", allow_module_level=True)

Doc = dict[str, Any]
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"
NEEDS_REDIS = "workermon.io/needs-redis"
NEEDS_DATABASE = "workermon.io/needs-database"
GRPC_PORT = 50051
HTTP_PORT = 8080
SECRET = "workermon-secrets"
# The Deployment (and component label) of each target: the MonitorService package is monitor-api.
COMPONENT_OF = {
    module.name: "monitor-api" if module.name == "monitor" else module.name for module in registry.MODULES
}
# Autoscaled in every overlay, with more replicas in production.
AUTOSCALED = {"gateway", "heartbeat", "monitor"}
# Allowed beyond Needs, each on purpose: incidents sends notifications out of the cluster (HTTPS and SMTP
# submission); the monitored workers beat to heartbeat from wherever they run.
EXTRA_EGRESS = {"incidents": {"notify"}}
EXTRA_INGRESS = {"heartbeat": {"workers"}}
PORT_KINDS = {
    frozenset({("UDP", 53), ("TCP", 53)}): "dns",
    frozenset({("TCP", 6379), ("TCP", 26379)}): "redis",
    frozenset({("TCP", 5432)}): "database",
    frozenset({("TCP", 443), ("TCP", 465), ("TCP", 587)}): "notify",
}


@dataclass
class Rendered:
    """One overlay's resources."""

    overlay: str
    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def named(self, kind: str, name: str) -> Doc:
        found = [doc for doc in self.of_kind(kind) if doc["metadata"]["name"] == name]
        assert len(found) == 1, f"{self.overlay}: {len(found)} {kind} named {name}"
        return found[0]

    def deployment(self, module: Module) -> Doc:
        return self.named("Deployment", f"workermon-{COMPONENT_OF[module.name]}")

    @property
    def config(self) -> dict[str, str]:
        maps = [d for d in self.of_kind("ConfigMap") if d["metadata"]["name"].startswith("workermon-config")]
        assert len(maps) == 1
        return dict(maps[0]["data"])

    def workloads(self) -> list[Doc]:
        return self.of_kind("Deployment") + self.of_kind("Job")


_RENDERED: dict[str, Rendered] = {}


def rendered(name: str) -> Rendered:
    """The overlay rendered once per test session."""
    if name not in _RENDERED:
        path = next(path for path in overlays() if path.name == name)
        _RENDERED[name] = Rendered(name, [doc for doc in yaml.safe_load_all(render(path)) if doc])
    return _RENDERED[name]


OVERLAYS = [path.name for path in overlays()]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> Rendered:
    return rendered(request.param)


def test_the_overlays_are_dev_and_prod() -> None:
    assert {"dev", "prod"} <= set(OVERLAYS)


def _main(workload: Doc) -> Doc:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{workload['metadata']['name']}: one container"
    return dict(containers[0])


def _all_containers(workload: Doc) -> Iterator[Doc]:
    pod = workload["spec"]["template"]["spec"]
    yield from pod.get("initContainers", [])
    yield from pod["containers"]


def _pod_labels(workload: Doc) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


# --- what runs ---------------------------------------------------------------------------------------


def test_one_deployment_per_target_running_that_target(overlay: Rendered) -> None:
    suite = [d for d in overlay.of_kind("Deployment") if d["metadata"]["labels"].get(NAME) == "workermon"]
    assert len(suite) == len(registry.MODULES)
    for module in registry.MODULES:
        container = _main(overlay.deployment(module))
        command = [*container.get("command", []), *container.get("args", [])]
        assert command == ["workermon", "serve", "--target", module.name]
        assert registry.resolve(command[-1]) == [module]
        assert container["image"].split(":")[0] == "workermon"
    job = overlay.named("Job", "workermon-migrate")
    assert _main(job)["command"] == ["workermon", "migrate"]


def test_probes_ask_the_health_service_for_readiness_and_the_process_for_liveness(
    overlay: Rendered,
) -> None:
    for module in registry.MODULES:
        container = _main(overlay.deployment(module))
        ready, alive = container["readinessProbe"], container["livenessProbe"]
        if module.name in registry.SERVICES:
            assert ready["grpc"]["port"] == GRPC_PORT
            assert ready["grpc"].get("service", "") == "", "readiness is the overall status"
            assert alive["grpc"] == {"port": GRPC_PORT, "service": LIVENESS_SERVICE}
            assert {"name": "grpc", "containerPort": GRPC_PORT} in container["ports"]
        else:  # the gateway serves no gRPC: HTTP /readyz (the services) and /healthz (the process)
            assert ready["httpGet"] == {"path": "/readyz", "port": "http"}
            assert alive["httpGet"] == {"path": "/healthz", "port": "http"}
            assert {"name": "http", "containerPort": HTTP_PORT} in container["ports"]
    assert overlay.config["WORKERMON_GRPC_PORT"] == str(GRPC_PORT)
    assert overlay.config["WORKERMON_HTTP_PORT"] == str(HTTP_PORT)
    assert overlay.config["WORKERMON_GRPC_HOST"] == overlay.config["WORKERMON_HTTP_HOST"] == "0.0.0.0"


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi)?$")
_UNIT = {None: 1.0, "m": 0.001, "Ki": 1024.0, "Mi": 1024.0**2, "Gi": 1024.0**3}


def _quantity(value: str | int) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"unexpected quantity {value!r}"
    return float(match.group(1)) * _UNIT[match.group(2)]


def test_every_container_has_requests_within_limits(overlay: Rendered) -> None:
    for workload in overlay.workloads():
        for container in _all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            for resource in ("cpu", "memory"):
                request = _quantity(resources["requests"][resource])
                limit = _quantity(resources["limits"][resource])
                assert 0 < request <= limit, f"{where}: {resource}"


def test_every_container_is_locked_down(overlay: Rendered) -> None:
    for workload in overlay.workloads():
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        pod_context = pod.get("securityContext", {})
        suite = workload["metadata"]["labels"].get(NAME) == "workermon"
        for container in _all_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            context = {**pod_context, **container["securityContext"]}
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            if suite:
                assert context["runAsUser"] == 10001, where
                mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
                assert "/tmp" in mounts, where
                volumes = {v["name"]: v for v in pod["volumes"]}
                assert "emptyDir" in volumes[mounts["/tmp"]], where
                if container["name"] != "wait-for-migrations":
                    data_dir = overlay.config["WORKERMON_DATA_DIR"]
                    assert "emptyDir" in volumes[mounts[data_dir]], where


def test_the_config_map_sets_only_settings_the_suite_reads_with_values_it_accepts(
    overlay: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = {Settings, *(model for module in registry.MODULES for model in module.settings)}
    known = {env_name(field, model) for model in models for field in model.model_fields}
    assert set(overlay.config) <= known
    for key, value in overlay.config.items():
        monkeypatch.setenv(key, value)
    for model in models:
        model()  # raises on a value the suite would refuse at start


# --- secrets and needs -------------------------------------------------------------------------------


def _secret_keys(container: Doc) -> set[str]:
    keys = set()
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"].startswith(SECRET)
            assert entry["name"] == ref["key"]
            keys.add(ref["key"])
    assert not any("secretRef" in source for source in container.get("envFrom", [])), "secrets by key only"
    return keys


def _expected_secrets(needs: Needs) -> set[str]:
    keys = {"WORKERMON_JWT_SECRET"}
    if needs.suite_redis or needs.watched_redis:  # the watched Redis is the suite's unless configured
        keys.add("REDIS_URL")
    if needs.watched_redis:
        keys.add("WORKERMON_QUEUE_REDIS_URL")
    if needs.database:
        keys.add("DATABASE_URL")
    return keys


def test_each_pod_gets_the_secrets_and_labels_its_needs_call_for(overlay: Rendered) -> None:
    for module in registry.MODULES:
        deployment = overlay.deployment(module)
        needs = module.needs
        assert _secret_keys(_main(deployment)) == _expected_secrets(needs), module.name
        labels = _pod_labels(deployment)
        assert (labels.get(NEEDS_REDIS) == "true") == (needs.suite_redis or needs.watched_redis)
        assert (labels.get(NEEDS_DATABASE) == "true") == needs.database
        init = [c["name"] for c in deployment["spec"]["template"]["spec"].get("initContainers", [])]
        assert init == (["wait-for-migrations"] if needs.database else []), module.name


def test_dev_generates_a_placeholder_secret_and_prod_expects_an_existing_one() -> None:
    dev = [s for s in rendered("dev").of_kind("Secret") if s["metadata"]["name"].startswith(SECRET)]
    assert len(dev) == 1
    assert dev[0]["metadata"]["name"] != SECRET, "generated, with a content hash"
    assert set(dev[0]["data"]) >= {"WORKERMON_JWT_SECRET", "REDIS_URL", "DATABASE_URL"}
    prod = rendered("prod")
    assert prod.of_kind("Secret") == []
    for workload in prod.workloads():
        for container in _all_containers(workload):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                assert ref is None or ref["name"] == SECRET


# --- services ----------------------------------------------------------------------------------------


def test_only_the_gateway_service_is_not_headless(overlay: Rendered) -> None:
    services = {
        s["metadata"]["name"]: s
        for s in overlay.of_kind("Service")
        if s["metadata"]["labels"].get(NAME) == "workermon"
    }
    assert set(services) == {f"workermon-{component}" for component in COMPONENT_OF.values()}
    for name, service in services.items():
        headless = service["spec"].get("clusterIP") == "None"
        assert headless == (name != "workermon-gateway"), name


def test_each_peer_target_names_the_headless_service_of_that_target(overlay: Rendered) -> None:
    for module in registry.MODULES:
        if module.name not in registry.SERVICES:
            continue
        # By DNS, so the channel balances over every ready pod (workermon_core.targets).
        target = overlay.config[env_name(f"{module.name}_target")]
        assert target.startswith("dns:///"), target
        host, port = target.removeprefix("dns:///").split(":")
        service = overlay.named("Service", host)
        assert service["spec"]["clusterIP"] == "None"
        assert service["spec"]["ports"] == [
            {"name": "grpc", "port": int(port), "targetPort": "grpc", "appProtocol": "grpc"}
        ]
        assert service["spec"]["selector"].items() <= _pod_labels(overlay.deployment(module)).items()


# --- network policies --------------------------------------------------------------------------------


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    assert "matchExpressions" not in selector, "the test reads matchLabels only"
    return dict(selector.get("matchLabels", {})).items() <= labels.items()


def _ports(rule: Doc) -> frozenset[tuple[str, int]]:
    return frozenset((port.get("protocol", "TCP"), port["port"]) for port in rule["ports"])


def _peer_kind(peer: Doc, direction: str, ports: frozenset[tuple[str, int]]) -> str:
    """A `from`/`to` entry: a component of the suite on the gRPC port, the workers, or pods by label."""
    if "namespaceSelector" in peer:
        assert peer == {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"workermon.io/worker": "true"}},
        }
        assert ports == {("TCP", GRPC_PORT)}
        return "workers"
    labels = dict(peer["podSelector"]["matchLabels"])
    if COMPONENT in labels:
        assert labels == {NAME: "workermon", COMPONENT: labels[COMPONENT]}
        assert ports == {("TCP", GRPC_PORT)}
        return f"{direction}:{labels[COMPONENT]}"
    return f"{direction}:" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + f"@{sorted(ports)}"


def _allowed(overlay: Rendered, labels: dict[str, str]) -> tuple[set[str], set[str]]:
    """What the policies selecting a pod with `labels` let in and out, as names (see _peer_kind)."""
    ingress: set[str] = set()
    egress: set[str] = set()
    isolated: set[str] = set()
    for policy in overlay.of_kind("NetworkPolicy"):
        spec = policy["spec"]
        if not _selects(spec["podSelector"], labels):
            continue
        isolated |= set(spec["policyTypes"])
        for rule in spec.get("ingress") or []:
            ports = _ports(rule)
            if "from" not in rule:
                assert ports == {("TCP", HTTP_PORT)}, "only the gateway's HTTP port is open to all"
                ingress.add("anyone:http")
            ingress |= {_peer_kind(peer, "from", ports) for peer in rule.get("from", [])}
        for rule in spec.get("egress") or []:
            ports = _ports(rule)
            if "to" not in rule:
                assert ports in PORT_KINDS, f"{policy['metadata']['name']}: egress to any address on {ports}"
                egress.add(PORT_KINDS[ports])
            egress |= {_peer_kind(peer, "to", ports) for peer in rule.get("to", [])}
    assert isolated == {"Ingress", "Egress"}, f"{labels}: isolated both ways"
    return ingress, egress


def _expected_egress(module: Module) -> set[str]:
    needs = module.needs
    expected = {"dns", *(f"to:{COMPONENT_OF[peer]}" for peer in needs.peers)}
    if needs.suite_redis or needs.watched_redis:
        expected.add("redis")
    if needs.database:
        expected.add("database")
    return expected | EXTRA_EGRESS.get(module.name, set())


def _expected_ingress(module: Module) -> set[str]:
    callers = {f"from:{COMPONENT_OF[m.name]}" for m in registry.MODULES if module.name in m.needs.peers}
    if module.name not in registry.SERVICES:
        callers.add("anyone:http")
    return callers | EXTRA_INGRESS.get(module.name, set())


def test_network_policies_allow_what_the_needs_say_and_nothing_else(overlay: Rendered) -> None:
    for module in registry.MODULES:
        ingress, egress = _allowed(overlay, _pod_labels(overlay.deployment(module)))
        assert egress == _expected_egress(module), module.name
        assert ingress == _expected_ingress(module), module.name
    # The migration reaches the database (and DNS), and nothing reaches it.
    ingress, egress = _allowed(overlay, _pod_labels(overlay.named("Job", "workermon-migrate")))
    assert (ingress, egress) == (set(), {"dns", "database"})


def test_dev_redis_and_postgres_are_reached_only_by_the_pods_that_need_them() -> None:
    dev = rendered("dev")
    for name, label, port in (("redis", NEEDS_REDIS, 6379), ("postgres", NEEDS_DATABASE, 5432)):
        ingress, egress = _allowed(dev, _pod_labels(dev.named("Deployment", f"workermon-{name}")))
        assert ingress == {f"from:{label}=true@{[('TCP', port)]}"}
        assert egress == {"dns"}


# --- replicas, autoscaling, disruption budgets ----------------------------------------------------------


def _autoscaler(overlay: Rendered, deployment: str) -> Doc | None:
    found = [
        h
        for h in overlay.of_kind("HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == deployment
    ]
    assert len(found) <= 1
    return found[0] if found else None


def _least_replicas(overlay: Rendered, module: Module) -> int:
    deployment = overlay.deployment(module)
    hpa = _autoscaler(overlay, deployment["metadata"]["name"])
    if hpa is None:
        return int(deployment["spec"].get("replicas", 1))
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count"
    return int(hpa["spec"]["minReplicas"])


def test_autoscalers_and_disruption_budgets(overlay: Rendered) -> None:
    for module in registry.MODULES:
        deployment = overlay.deployment(module)
        name = deployment["metadata"]["name"]
        hpa = _autoscaler(overlay, name)
        assert (hpa is not None) == (module.name in AUTOSCALED), name
        if hpa is not None:
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert hpa["spec"]["scaleTargetRef"] == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": name,
            }
            assert hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        budgets = [
            p
            for p in overlay.of_kind("PodDisruptionBudget")
            if _selects(p["spec"]["selector"], _pod_labels(deployment))
        ]
        assert len(budgets) == 1, name
        assert budgets[0]["apiVersion"] == "policy/v1"
        assert budgets[0]["spec"]["maxUnavailable"] == 1


def test_prod_runs_more_replicas_of_every_deployment_than_dev() -> None:
    dev, prod = rendered("dev"), rendered("prod")
    for module in registry.MODULES:
        assert _least_replicas(prod, module) > _least_replicas(dev, module), module.name
        assert _least_replicas(prod, module) >= 2, module.name


def test_the_manifest_files_are_the_ones_rendered() -> None:
    """Every YAML file under deploy/k8s is used by some overlay (no stale copy is left to mislead)."""
    root = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
    listed: set[Path] = set()
    for kustomization in root.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text(encoding="utf-8"))
        listed |= {kustomization.parent / entry for entry in spec.get("resources", [])}
        listed |= {
            kustomization.parent / patch["path"] for patch in spec.get("patches", []) if "path" in patch
        }
    files = {path for path in root.rglob("*.yaml") if path.name != "kustomization.yaml"}
    assert files <= {path.resolve() for path in listed}
