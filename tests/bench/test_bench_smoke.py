"""`python -m bench.heartbeat --quick` runs end to end and writes complete, positive figures.

Only the shape of the results is checked, never a time: the benchmark measures, it does not judge.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import positive, ratios_measured, run_quick, stamped

LOAD_KEYS = ("beats", "beats_per_s", "p50_ms", "p99_ms", "client_cpu_s_per_1k", "machine_busy_pct")
SERVER_KEYS = ("server_cpu_s", "server_cpu_pct", "server_cpu_s_per_1k")
READ_KEYS = ("calls", "p50_ms", "p99_ms", "calls_per_s", "server_cpu_ms_per_call")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    printed, data = run_quick(
        "bench.heartbeat", tmp_path_factory.mktemp("bench") / "heartbeat.json", timeout=100
    )
    assert "Targets" in printed and "What limits throughput" in printed
    return data


def test_runs_quick_mode_without_errors(results: dict[str, Any]) -> None:
    stamped(results)
    assert results["warnings"] == []
    assert results["topology"]["cpus"] >= 1


def test_unary_figures(results: dict[str, Any]) -> None:
    unary = results["unary"]
    for name in ("echo", "heartbeat", "paced"):
        positive(unary[name], LOAD_KEYS + SERVER_KEYS, f"unary.{name}")
        assert unary[name]["errors"] == 0
    positive(unary["store_only"], LOAD_KEYS, "unary.store_only")
    positive(unary["heartbeat"], ("redis_evalsha_calls", "redis_usec_per_call"), "unary.heartbeat")
    positive(unary["ratio"], ("throughput", "p50", "p99", "server_cpu_per_call"), "unary.ratio")


def test_replicas_spread_the_load_over_both_processes(results: dict[str, Any]) -> None:
    replicas = results["replicas"]
    for kind in ("echo", "heartbeat"):
        one, two = replicas[kind]["one"], replicas[kind]["two"]
        for name, stats in (("one", one), ("two", two)):
            positive(stats, LOAD_KEYS + SERVER_KEYS, f"replicas.{kind}.{name}")
            assert stats["errors"] == 0, f"replicas.{kind}.{name}"
        assert (one["server_processes"], two["server_processes"]) == (1, 2)
        each = two["server_cpu_s_per_process"]
        # Round-robin sends both the same number of calls; a process left out would show only its idle
        # CPU, a few ms.
        assert min(each) > 0.25 * sum(each), f"replicas.{kind}.two: server CPU per process {each}"
    positive(replicas["scaling"], ("echo", "heartbeat"), "replicas.scaling")
    positive(replicas["efficiency"], ("one", "two"), "replicas.efficiency")


def test_stream_figures(results: dict[str, Any]) -> None:
    stream = results["stream"]
    positive(stream, LOAD_KEYS + SERVER_KEYS + ("streams_open", "server_rss_open_mb"), "stream")
    assert stream["streams_open"] == results["plan"]["streams"]
    assert isinstance(stream["server_rss_per_1k_streams_mb"], float)


def test_list_figures(results: dict[str, Any]) -> None:
    listing = results["list"]
    assert listing["workers"] == results["plan"]["list_workers"]
    positive(listing, ("register_s", "register_per_s"), "list")
    assert set(listing["cases"]) == {"page_50", "page_100", "page_50_concurrent_10", "summary"}
    for name, case in listing["cases"].items():
        positive(case, READ_KEYS[:-1], f"list.cases.{name}")
        # Process CPU time ticks in 10 ms steps: a quick run of a few hundred cheap calls may read 0.
        assert case["server_cpu_ms_per_call"] >= 0, f"list.cases.{name}"


def test_targets_and_limits(results: dict[str, Any]) -> None:
    assert len(results["targets"]) == 7
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS"}
    limits = results["limits"]
    positive(limits, ("server_cpu_us_per_beat_unary", "echo_server_cpu_us_per_call"), "limits")
    assert limits["findings"]


def test_ratios_for_the_check(results: dict[str, Any]) -> None:
    unary = {f"unary_vs_echo.{k}" for k in ("throughput", "p50", "p99", "server_cpu_per_call")}
    replicas = {f"replicas.{k}" for k in ("scaling", "efficiency_1_process", "efficiency_2_processes")}
    ratios_measured(results["ratios"], unary | replicas)
    assert results["ratios"]["unary_vs_echo.throughput"]["value"] == results["unary"]["ratio"]["throughput"]
