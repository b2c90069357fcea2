"""`python -m bench.gateway --quick` runs end to end and writes complete, positive figures.

Only the shape of the results is checked, never a time: the benchmark measures, it does not judge.
CPU readings of a few idle seconds may be 0 at the clock's 10 ms resolution, so they are only >= 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import not_negative, positive, ratios_measured, run_quick, stamped

CALL_KEYS = ("calls", "p50_ms", "p99_ms", "max_ms", "calls_per_s", "response_bytes")


@pytest.fixture(scope="module")
def run_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return run_quick("bench.gateway", tmp_path_factory.mktemp("bench") / "gateway.json", timeout=150)


@pytest.fixture(scope="module")
def results(run_output: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return run_output[1]


def test_runs_quick_mode_without_warnings(results: dict[str, Any]) -> None:
    stamped(results)
    assert results["warnings"] == []
    assert results["topology"]["cpus"] >= 1
    assert results["topology"]["http_url"].startswith("http://127.0.0.1:")
    assert results["cleanup"]["keys_deleted"] > results["plan"]["queues"] * results["plan"]["jobs_per_queue"]


def test_workload_is_what_was_asked(results: dict[str, Any]) -> None:
    plan, workload = results["plan"], results["workload"]
    assert workload["queues"] == plan["queues"]
    assert sum(workload["counts"].values()) == plan["queues"] * plan["jobs_per_queue"]
    assert results["collect_now"]["queues"] == plan["queues"]


def test_http_and_grpc_figures_side_by_side(results: dict[str, Any]) -> None:
    plan = results["plan"]
    for rpc in ("overview", "queues"):
        for load, callers in (("sequential", 1), ("concurrent", plan["callers"])):
            for side in ("grpc", "http"):
                case = results["reads"][rpc][load][side]
                where = f"reads.{rpc}.{load}.{side}"
                positive(case, CALL_KEYS, where)
                not_negative(case, ("server_cpu_pct", "server_cpu_ms_per_call", "client_cpu_pct"), where)
                assert case["callers"] == callers
                assert case["errors"] == case["timeouts"] == 0
                assert case["items"] == plan["queues"], where
            q = results["http_over_grpc"][f"{rpc}_{load}"]
            positive(q, ("p50", "p99", "calls_per_s"), f"http_over_grpc.{rpc}_{load}")


def test_ratios_for_the_check(results: dict[str, Any]) -> None:
    metrics = ("p50", "p99", "calls_per_s", "server_cpu_per_call")
    names = {
        f"http_vs_grpc.{rpc}.{load}.{metric}"
        for rpc in ("overview", "queues")
        for load in ("sequential", "concurrent")
        for metric in metrics
    } | {"page_encode_vs_json_format.p50", "page_encode_vs_json_format.p99"}
    assert set(results["ratios"]) == names
    # A few dozen quick calls may cost the server no CPU tick (10 ms): the timed ratios must have a value.
    timed = {name for name in names if not name.endswith("server_cpu_per_call")}
    ratios_measured({name: results["ratios"][name] for name in timed}, timed)


def test_page_encode_beside_json_format(results: dict[str, Any]) -> None:
    encoded = results["page_encode"]
    # Every queue's first page, each of 100 distinct jobs, gave the same JSON as json_format.
    assert encoded["pages"] == results["plan"]["queues"] and encoded["jobs_per_page"] == 100
    assert encoded["errors"] == 0 and encoded["body_bytes"] > 100 * 100
    for side in ("ours", "reference"):
        assert encoded[side]["count"] == results["plan"]["encode_samples"]
        assert 0 < encoded[side]["p50_ms"] <= encoded[side]["p99_ms"]


def test_stream_figures(results: dict[str, Any]) -> None:
    plan, stream = results["plan"], results["stream"]
    assert stream["clients"] == stream["opened"] == stream["initial_events"] == plan["sse_clients"]
    assert stream["dropped"] == stream["ended_early"] == stream["open_errors"] == 0
    positive(stream, ("open_s", "rss_before_mb", "rss_connected_mb", "rss_closed_mb", "window_s"), "stream")
    for key in ("idle_without_clients", "idle_with_clients", "transitions_span"):
        positive(stream[key], ("seconds",), f"stream.{key}")
        not_negative(stream[key], ("server_cpu_pct", "machine_busy_pct"), f"stream.{key}")
    assert len(stream["transitions"]) == plan["transitions"]
    for t in stream["transitions"]:
        assert t["reached"] == plan["sse_clients"] and t["missing"] == 0
        positive(t, ("first_ms", "p50_ms", "last_ms"), f"transition {t['worker']}")
        assert t["first_ms"] <= t["p50_ms"] <= t["last_ms"]
    # Every client saw every transition, as a `worker` event.
    assert stream["events_min_per_client"]["worker"] == plan["transitions"]


def test_targets_and_findings(run_output: tuple[str, dict[str, Any]]) -> None:
    stdout, results = run_output
    assert len(results["targets"]) == 5
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS", "INFO"}
    assert any(t["verdict"] == "PASS" and "no client dropped" in t["target"] for t in results["targets"])
    assert results["findings"]
    assert "ratio HTTP / gRPC" in stdout
    assert "Targets" in stdout and "What limits the figures" in stdout
