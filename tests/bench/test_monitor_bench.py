"""`python -m bench.monitor --quick` runs end to end and writes complete, positive figures.

Only the shape of the results is checked, never a time: the benchmark measures, it does not judge.
Quick mode does not run bull-board at all (and says so); its queues are made by Node BullMQ, as the
full run's are (bench/node/workload.mjs), so Node is needed, as for tests/node.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import positive, ratios_measured, run_quick, stamped

CALL_KEYS = ("calls", "p50_ms", "p99_ms", "max_ms", "calls_per_s", "server_cpu_ms_per_call", "response_bytes")


@pytest.fixture(scope="module")
def run_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    return run_quick("bench.monitor", tmp_path_factory.mktemp("bench") / "monitor.json", timeout=110)


@pytest.fixture(scope="module")
def results(run_output: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return run_output[1]


def test_runs_quick_mode_without_warnings(results: dict[str, Any]) -> None:
    stamped(results)
    assert results["warnings"] == []
    assert results["topology"]["cpus"] >= 1
    assert results["cleanup"]["keys_deleted"] > results["plan"]["big_queue_jobs"]


def test_workload_is_what_was_asked(results: dict[str, Any]) -> None:
    plan, workload = results["plan"], results["workload"]
    assert workload["queues"] == plan["queues"]
    assert sum(workload["counts"].values()) == plan["queues"] * plan["jobs_per_queue"]
    counts = workload["counts"]
    assert counts["completed"] > counts["waiting"] > 0
    assert counts["failed"] > 0 and counts["delayed"] > 0
    # Made by Node BullMQ itself, not by raw writes of ours; BullMQBackend.states agreed (no warning).
    assert workload["made_by"].startswith("Node BullMQ ")
    positive(workload["steps_s"], ("add", "work"), "workload.steps_s")


def test_board_figures(results: dict[str, Any]) -> None:
    plan = results["plan"]
    for key, max_age in (("board", 1.0), ("board_live0", 0.0)):
        board = results[key]
        assert board["live_max_age_s"] == max_age
        assert board["collect_now"]["queues"] == plan["queues"]
        positive(board, ("rss_before_mb", "rss_after_mb"), key)
        for rpc in ("overview", "queues"):
            for load, callers in (("sequential", 1), ("concurrent", plan["callers"])):
                case = board[rpc][load]
                positive(case, CALL_KEYS, f"{key}.{rpc}.{load}")
                assert case["callers"] == callers
                assert case["errors"] == case["timeouts"] == 0
                assert case["items"] == plan["queues"]
    # At 0 s every sequential call reads Redis: one reading of the queues per call.
    assert results["board_live0"]["queues"]["sequential"]["readings_per_call"] == pytest.approx(1.0, abs=0.05)


def test_quick_mode_says_bull_board_is_not_run(run_output: tuple[str, dict[str, Any]]) -> None:
    stdout, results = run_output
    assert results["bull_board"] == {"skipped": True, "reason": "quick mode: bull-board is not run"}
    assert "bull-board: not measured (quick mode: bull-board is not run)" in stdout
    assert results["vs_bull_board"] == {}
    # Without bull-board its ratios have no value, and say why.
    board = {name: entry for name, entry in results["ratios"].items() if "bull_board" in name}
    assert len(board) == 12
    assert {(entry["value"], entry["why"]) for entry in board.values()} == {
        (None, "bull-board not measured (quick mode: bull-board is not run)")
    }
    jobs = {k: v for k, v in results["ratios"].items() if k not in board}
    ratios_measured(jobs, {"list_jobs_vs_raw_redis.p50", "list_jobs_vs_raw_redis.p99"})


def test_list_jobs_figures(results: dict[str, Any]) -> None:
    jobs, plan = results["jobs"], results["plan"]
    assert jobs["jobs"] == plan["big_queue_jobs"]
    positive(jobs["write"], ("seconds", "jobs_per_s"), "jobs.write")
    positive(jobs["grpc"], CALL_KEYS, "jobs.grpc")
    assert jobs["grpc"]["items"] == plan["page_size"]
    assert jobs["grpc"]["calls"] == plan["list_jobs_calls"]
    positive(jobs["raw"], ("calls", "p50_ms", "p99_ms", "calls_per_s"), "jobs.raw")
    positive(jobs["discovery"], CALL_KEYS, "jobs.discovery")
    assert jobs["discovery"]["items"] == plan["queues"] + 1


def test_targets_and_findings(run_output: tuple[str, dict[str, Any]]) -> None:
    stdout, results = run_output
    assert len(results["targets"]) == 5
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS"}
    assert results["findings"]
    assert "Targets" in stdout and "What limits the figures" in stdout
