"""The ratios a run records for `bench.check`: a value and a direction, or no value and why.

Fabricated figures only; no benchmark runs here.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench import gateway_report, monitor_report, report
from bench.record import ratio_entry
from tests.support.bench import clean_beats, clean_calls, clean_page_encode

Results = dict[str, Any]


def test_a_measured_ratio_has_its_value_and_direction() -> None:
    assert ratio_entry(0.31, "higher") == {"value": 0.31, "better": "higher"}


def test_a_ratio_of_failed_samples_has_no_value_and_says_why() -> None:
    entry = ratio_entry(0.31, "lower", ["HTTP: 2 time-outs", "gRPC: empty sample"])
    assert entry == {"value": None, "better": "lower", "why": "HTTP: 2 time-outs; gRPC: empty sample"}


@pytest.mark.parametrize("value", [0.0, math.inf, math.nan])
def test_a_ratio_with_nothing_on_one_side_has_no_value(value: float) -> None:
    assert ratio_entry(value, "higher")["value"] is None


def test_gateway_ratios_of_a_failed_pair_have_no_value() -> None:
    reads = {
        rpc: {load: {"http": clean_calls(), "grpc": clean_calls()} for load in ("sequential", "concurrent")}
        for rpc in ("overview", "queues")
    }
    reads["queues"]["concurrent"]["http"] = clean_calls(timeouts=3)
    r = {"reads": reads, "page_encode": clean_page_encode()}
    r["http_over_grpc"] = gateway_report.http_over_grpc(r)
    ratios = gateway_report.check_ratios(r)
    assert len(ratios) == 18
    assert ratios["page_encode_vs_json_format.p50"] == {"value": 0.6 / 1.8, "better": "lower"}
    failed = {name for name, entry in ratios.items() if entry["value"] is None}
    assert failed == {
        f"http_vs_grpc.queues.concurrent.{m}" for m in ("p50", "p99", "calls_per_s", "server_cpu_per_call")
    }
    assert ratios["http_vs_grpc.queues.concurrent.p99"]["why"] == "HTTP: 3 time-outs"
    assert ratios["http_vs_grpc.overview.sequential.calls_per_s"] == {"value": 1.0, "better": "higher"}
    assert ratios["http_vs_grpc.overview.sequential.p99"]["better"] == "lower"


def test_page_encode_ratios_of_differing_bodies_have_no_value() -> None:
    reads = {rpc: {"sequential": {"http": clean_calls(), "grpc": clean_calls()}} for rpc in ("overview",)}
    r = {"reads": reads, "page_encode": clean_page_encode(errors=2)}
    r["http_over_grpc"] = gateway_report.http_over_grpc(r)
    entry = gateway_report.check_ratios(r)["page_encode_vs_json_format.p50"]
    assert entry["value"] is None and "2 differing bodies" in entry["why"]


def test_monitor_ratios_without_bull_board_have_no_value() -> None:
    board = {"queues": {load: clean_calls() for load in ("sequential", "concurrent")}}
    r = {
        "board": board,
        "board_live0": board,
        "bull_board": {"skipped": True, "reason": "npm is not installed"},
        "jobs": {"grpc": clean_calls(p50_ms=3.0), "raw": clean_calls(p50_ms=0.5)},
    }
    r["vs_bull_board"] = monitor_report.vs_bull_board(r)
    ratios = monitor_report.check_ratios(r)
    board_ratios = [entry for name, entry in ratios.items() if "bull_board" in name]
    assert len(board_ratios) == 12
    assert {entry["why"] for entry in board_ratios} == {"bull-board not measured (npm is not installed)"}
    assert ratios["list_jobs_vs_raw_redis.p50"] == {"value": 6.0, "better": "lower"}


def test_heartbeat_ratios_follow_the_runs_they_come_from() -> None:
    results = {
        "unary": {
            "heartbeat": clean_beats(),
            "echo": clean_beats(),
            "ratio": {"throughput": 0.3, "p50": 2.8, "p99": 3.1, "server_cpu_per_call": 2.9},
        },
        "replicas": {
            "heartbeat": {"one": clean_beats(), "two": clean_beats()},
            "echo": {"one": clean_beats(errors=4), "two": clean_beats()},
            "scaling": {"heartbeat": 0.96, "echo": 0.92},
            "efficiency": {"one": 0.38, "two": 0.38},
        },
    }
    ratios = report.check_ratios(results)
    assert {name for name, entry in ratios.items() if entry["value"] is None} == {
        "replicas.efficiency_1_process"
    }
    assert ratios["replicas.efficiency_1_process"]["why"] == "echo: 4 errors"
    assert ratios["unary_vs_echo.p99"] == {"value": 3.1, "better": "lower"}
    assert ratios["replicas.scaling"] == {"value": 0.96, "better": "higher"}
