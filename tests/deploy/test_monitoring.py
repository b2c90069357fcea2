"""The alert rules (deploy/prometheus) and the Grafana dashboard (deploy/grafana) use only what the gateway
exports: every metric name they select is a family a real gateway serves at /metrics, every label they
match, group or join on is a label of those series, and every value they compare a closed label with
(state, quantile, service, type, severity, status) is one the gateway writes. promtool parses every
expression, the rules' own file and the dashboard's."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import DEPLOY
from tests.support.gateway import Gateway
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon_gateway.metrics import Readings, RequestMetricsState, exposition

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "worker-monitor.json"
# Series Prometheus makes itself, with the labels it gives them, and the labels it adds to every series.
PROMETHEUS_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}
# Labels whose values are a closed set the gateway writes (the others name queues, routes, codes...).
CLOSED_LABELS = {"state", "quantile", "service", "type", "severity", "status"}
# Sample names per family type, as the text format writes them.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$queue": ".*"}


@dataclass
class Exported:
    """What a gateway exports: label names per sample name, and the values seen per closed label."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for suffix in SUFFIXES.get(family.type, ("",)):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)
                for label, value in sample.labels.items():
                    if label in CLOSED_LABELS:
                        self.values.setdefault((sample.name, label), set()).add(value)


def every_family() -> str:
    """The exposition of one scrape in which every service answered with one of everything: each
    family with a sample, each incident type, severity and open status."""
    queues = mon_pb.ListQueuesResponse(
        queues=[mon_pb.Queue(name="q", counts=mon_pb.JobCounts(waiting=1), paused=True, latency_ms=1500)]
    )
    summaries = col_pb.SummarizeQueuesResponse(
        summaries=[
            col_pb.QueueSummary(
                queue="q",
                latest=col_pb.QueueSnapshot(completed_cumulative=3, failed_cumulative=1),
                processing_15m=col_pb.Durations(samples=5, p50_ms=10, p95_ms=20, p99_ms=30),
                wait_15m=col_pb.Durations(samples=5, p50_ms=40, p95_ms=50, p99_ms=60),
            )
        ]
    )
    workers = hb_pb.GetWorkerSummaryResponse(
        online=1, offline=1, queues=[hb_pb.QueueWorkerCount(queue="q", online=1)]
    )
    open_statuses = [
        inc_pb.INCIDENT_STATUS_PENDING,
        inc_pb.INCIDENT_STATUS_ACTIVE,
        inc_pb.INCIDENT_STATUS_ACKNOWLEDGED,
    ]
    incidents = inc_pb.ListIncidentsResponse(
        incidents=[
            inc_pb.Incident(type=kind, severity=severity, status=status)
            for kind in inc_pb.IncidentType.values()
            for severity in inc_pb.Severity.values()
            for status in open_statuses
            if kind and severity
        ]
    )
    state = RequestMetricsState()
    state.requests.labels("GET", "/metrics", "200").inc()
    state.duration.labels("GET", "/metrics").observe(0.01)
    return exposition(Readings(queues, summaries, workers, incidents), state).decode()


@pytest.fixture(scope="module")
async def exported(gateway: Gateway) -> Exported:
    """A real gateway's /metrics (every service of the suite behind it), and one of everything."""
    client = gateway.client(None)
    await client.get("/metrics")
    served = await client.get("/metrics")
    assert served.status_code == 200
    real, complete = Exported(), Exported()
    real.add(served.text)
    complete.add(every_family())
    # The full exposition is the served one filled in: the same families, of the same types.
    suite_families = {name for name in complete.types if name.startswith("workermon_")}
    assert {name: complete.types[name] for name in suite_families} == {
        name: real.types.get(name) for name in suite_families
    }
    complete.add(served.text)
    return complete


# --- a small PromQL reader: selectors, label matchers, grouping and joining labels ---------------------


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]]


@dataclass
class Expression:
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      | (?P<range>\[[^\]]*\])
      | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
      | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<open>\{)
      | (?P<paren>[(),])
      | (?P<space>\s+)
      | (?P<operator>[-+*/%^=!<>~@]+)""",
    re.X,
)
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(\"(?:[^\"\\]|\\.)*\")\s*,?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"}
_MODIFIERS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
    "quantile", "limitk", "limit_ratio",
}  # fmt: skip


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        assert match, f"cannot read {expr[position:]!r} in {expr!r}"
        kind = str(match.lastgroup)
        if kind == "open":  # label matchers, read up to the closing brace outside strings
            end = position + 1
            while expr[end] != "}":
                string = re.compile(r'"(?:[^"\\]|\\.)*"').match(expr, end)
                end = string.end() if string else end + 1
            yield "matchers", expr[position + 1 : end]
            position = end + 1
            continue
        if kind != "space":
            yield kind, match.group()
        position = match.end()


def parse(expr: str) -> Expression:
    """The selectors and the grouping / joining labels of a PromQL expression."""
    tokens = list(_tokens(expr))
    found = Expression()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        after = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text.lower() in _MODIFIERS:
            if after == ("paren", "("):
                close = tokens.index(("paren", ")"), index)
                found.grouping |= {t for k, t in tokens[index + 2 : close] if k == "name"}
                index = close
        elif kind == "name" and (after == ("paren", "(") or text in _AGGREGATIONS):
            pass  # a function or an aggregation
        elif kind == "name" and text.lower() not in _KEYWORDS:
            matchers: list[tuple[str, str, str]] = []
            if after[0] == "matchers":
                matchers = [(n, op, json.loads(v)) for n, op, v in _MATCHER.findall(after[1])]
                index += 1
            found.selectors.append(Selector(text, matchers))
        assert kind != "matchers" or tokens[index - 1][0] == "name", f"a selector without a name in {expr!r}"
        index += 1
    return found


def test_the_reader_finds_selectors_matchers_and_labels() -> None:
    found = parse(
        'sum by (queue) (rate(a_total{queue=~"$queue", state="x"}[5m])) / on(queue) group_left '
        'b{route="/v1/{id}"} > 0.5 and max(c) without (le) unless d offset 5m'
    )
    assert [(s.metric, s.matchers) for s in found.selectors] == [
        ("a_total", [("queue", "=~", "$queue"), ("state", "=", "x")]),
        ("b", [("route", "=", "/v1/{id}")]),
        ("c", []),
        ("d", []),
    ]
    assert found.grouping == {"queue", "le"}


# --- what the files query -------------------------------------------------------------------------------


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions() -> dict[str, str]:
    """Each query of the dashboard by panel title, Grafana's variables replaced by values."""
    found = {}
    for panel in panels(dashboard()):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found[f"{panel['title']} (panel {panel['id']}, {target['refId']})"] = expr
    return found


def check(expr: str, exported: Exported) -> list[str]:
    """What `expr` selects, matches or groups by that the gateway does not export."""
    parsed = parse(expr)
    problems = []
    known = {**exported.labels, **PROMETHEUS_SERIES}
    labels_in_use = set(TARGET_LABELS)
    for selector in parsed.selectors:
        if selector.metric not in known:
            problems.append(f"no metric {selector.metric}")
            continue
        labels = known[selector.metric] | TARGET_LABELS
        labels_in_use |= labels
        for label, _operator, value in selector.matchers:
            if label not in labels:
                problems.append(f"{selector.metric} has no label {label}")
            elif label in CLOSED_LABELS and re.fullmatch(r"[\w.|]+", value):
                wrong = set(value.split("|")) - exported.values.get((selector.metric, label), set())
                if wrong:
                    problems.append(f"{selector.metric}{{{label}}} is never {sorted(wrong)}")
    problems += [f"no series here has a label {label}" for label in sorted(parsed.grouping - labels_in_use)]
    return problems


def test_the_alert_rules_use_only_exported_series(exported: Exported) -> None:
    expressions = alert_expressions()
    assert len(expressions) == 8
    problems = {name: check(expr, exported) for name, expr in expressions.items()}
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_dashboard_uses_only_exported_series(exported: Exported) -> None:
    expressions = dashboard_expressions()
    assert len(expressions) >= 20
    problems = {title: check(expr, exported) for title, expr in expressions.items()}
    assert {title: found for title, found in problems.items() if found} == {}
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["query"]["query"])
            assert query, variable["name"]
            assert query[2] in exported.labels[query[1]], variable["name"]


def test_the_checker_finds_what_the_gateway_does_not_export(exported: Exported) -> None:
    assert check('workermon_queue_jobs{state="waiting"}', exported) == []
    assert check('workermon_queue_job{state="waiting"}', exported) == ["no metric workermon_queue_job"]
    assert check('workermon_queue_jobs{status="waiting"}', exported) == [
        "workermon_queue_jobs has no label status"
    ]
    assert check('workermon_queue_jobs{state=~"waiting|stalled"}', exported) == [
        "workermon_queue_jobs{state} is never ['stalled']"
    ]
    assert check('workermon_incidents_open{severity="CRITICAL"}', exported) == [
        "workermon_incidents_open{severity} is never ['CRITICAL']"
    ]
    assert check("sum by (worker) (workermon_queue_workers_online)", exported) == [
        "no series here has a label worker"
    ]
    assert check("workermon_queue_completed", exported) == ["no metric workermon_queue_completed"]


def test_the_dashboard_is_laid_out_and_wired_to_its_datasource() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(board):
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
    (source,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert source["name"] == "datasource" and source["current"]["value"] == "workermon-prometheus"
    titles = {panel["title"] for panel in panels(board)}
    for topic in ("Waiting jobs", "Completed jobs per minute", "Failure rate", "Processing time p95",
                  "Online workers per queue", "Open incidents"):  # fmt: skip
        assert topic in titles


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_rules_and_their_tests(promtool: str) -> None:
    checked = _promtool(promtool, "check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool(promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    expressions = list(dashboard_expressions().values())
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard_query_{n}", "expr": e} for n, e in enumerate(expressions)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = _promtool(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(expressions)} rules found" in checked.stdout
