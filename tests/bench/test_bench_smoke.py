"""`python -m bench.heartbeat --quick` runs end to end and writes complete, positive figures.

Only the shape of the results is checked, never a time: the benchmark measures, it does not judge.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOAD_KEYS = ("beats", "beats_per_s", "p50_ms", "p99_ms", "client_cpu_s_per_1k", "machine_busy_pct")
SERVER_KEYS = ("server_cpu_s", "server_cpu_pct", "server_cpu_s_per_1k")
READ_KEYS = ("calls", "p50_ms", "p99_ms", "calls_per_s", "server_cpu_ms_per_call")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("bench") / "heartbeat.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.heartbeat", "--quick", "--output", str(output)],
        check=False,  # the assertion below shows the output
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Targets" in run.stdout and "What limits throughput" in run.stdout
    data: dict[str, Any] = json.loads(output.read_text())
    return data


def _positive(section: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        assert isinstance(section[key], int | float), f"{where}.{key}"
        assert section[key] > 0, f"{where}.{key} = {section[key]}"


def test_runs_quick_mode_without_errors(results: dict[str, Any]) -> None:
    assert results["mode"] == "quick"
    assert results["warnings"] == []
    assert results["topology"]["cpus"] >= 1


def test_unary_figures(results: dict[str, Any]) -> None:
    unary = results["unary"]
    for name in ("echo", "heartbeat", "paced"):
        _positive(unary[name], LOAD_KEYS + SERVER_KEYS, f"unary.{name}")
        assert unary[name]["errors"] == 0
    _positive(unary["store_only"], LOAD_KEYS, "unary.store_only")
    _positive(unary["heartbeat"], ("redis_evalsha_calls", "redis_usec_per_call"), "unary.heartbeat")
    _positive(unary["ratio"], ("throughput", "p50", "p99", "server_cpu_per_call"), "unary.ratio")


def test_stream_figures(results: dict[str, Any]) -> None:
    stream = results["stream"]
    _positive(stream, LOAD_KEYS + SERVER_KEYS + ("streams_open", "server_rss_open_mb"), "stream")
    assert stream["streams_open"] == results["plan"]["streams"]
    assert isinstance(stream["server_rss_per_1k_streams_mb"], float)


def test_list_figures(results: dict[str, Any]) -> None:
    listing = results["list"]
    assert listing["workers"] == results["plan"]["list_workers"]
    _positive(listing, ("register_s", "register_per_s"), "list")
    assert set(listing["cases"]) == {"page_50", "page_100", "page_50_concurrent_10", "summary"}
    for name, case in listing["cases"].items():
        _positive(case, READ_KEYS[:-1], f"list.cases.{name}")
        # Process CPU time ticks in 10 ms steps: a quick run of a few hundred cheap calls may read 0.
        assert case["server_cpu_ms_per_call"] >= 0, f"list.cases.{name}"


def test_targets_and_limits(results: dict[str, Any]) -> None:
    assert len(results["targets"]) == 6
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS"}
    limits = results["limits"]
    _positive(limits, ("server_cpu_us_per_beat_unary", "echo_server_cpu_us_per_call"), "limits")
    assert limits["findings"]
