"""`python -m bench.collector --quick` runs end to end and writes complete, positive figures.

Only the shape of the results is checked, never a time: the benchmark measures, it does not judge.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bench.collector_db import history_rows, open_sqlite, summary_pool
from bench.collector_timing import PHASES, READS
from tests.support.bench import positive, ratios_measured, run_quick, stamped
from workermon_collector.store import SnapshotStore
from workermon_collector.store.parts import MINUTE, floor_time

RUN_KEYS = ("wall_ms", "collector_ms", "events", "finished_jobs", "rows_written", "process_cpu_ms")
CYCLE_KEYS = ("min_ms", "median_ms", "max_ms", "events_median", "finished_jobs_median")
ALONE_KEYS = (
    "states_ms",
    "raw_counts_ms",
    "states_over_raw",
    "follow_idle_ms",
    "counters_ms",
    "durations_ms",
)
LATENCY_KEYS = ("calls", "p50_ms", "p99_ms", "max_ms", "calls_per_s")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    printed, data = run_quick(
        "bench.collector", tmp_path_factory.mktemp("bench") / "collector.json", timeout=110
    )
    assert "Targets" in printed and "Where the cycle time goes" in printed
    return data


def test_runs_quick_mode_without_warnings(results: dict[str, Any]) -> None:
    stamped(results)
    assert results["warnings"] == []
    assert results["topology"]["cpus"] >= 1
    assert results["cleanup"]["keys_deleted"] > 0


def test_population_is_real_bullmq_work(results: dict[str, Any]) -> None:
    populate, plan = results["populate"], results["plan"]
    assert sum(populate["added"].values()) == plan["queues"] * plan["jobs_per_queue"]
    assert populate["added"]["waiting"] > populate["added"]["delayed"] > 0
    assert populate["processed"]["completed"] > 0
    positive(populate, ("seconds", "add_jobs_per_s", "catch_up_events", "finished_in_minute"), "populate")


def test_cycles_cover_every_queue(results: dict[str, Any]) -> None:
    plan = results["plan"]
    assert "sqlite" in results["cycle"]
    for kind, cycle in results["cycle"].items():
        positive(cycle, CYCLE_KEYS, f"cycle.{kind}")
        assert len(cycle["runs"]) == plan["cycles"]
        for i, run in enumerate([cycle["first"], *cycle["runs"]]):
            positive(run, RUN_KEYS, f"cycle.{kind}[{i}]")
            assert run["rows_written"] == plan["queues"]
            assert set(run["phases_ms"]) == set(PHASES)
            assert set(run["reads_ms"]) == set(READS)
            # Every part of the cycle was seen, and together the parts account for the whole cycle.
            for phase in ("follow", "reads", "rows", "write"):
                assert run["phases_ms"][phase] > 0, f"cycle.{kind}[{i}].{phase}"
            for read in READS:
                assert 0 < run["reads_ms"][read] <= run["phases_ms"]["reads"], f"cycle.{kind}[{i}].{read}"
            assert sum(run["phases_ms"].values()) == pytest.approx(run["wall_ms"], rel=0.01)


def test_phases_alone_and_baselines(results: dict[str, Any]) -> None:
    alone = results["phases_alone"]
    positive(alone, ALONE_KEYS, "phases_alone")
    assert set(alone["write_ms"]) == set(results["cycle"])
    assert all(ms > 0 for ms in alone["write_ms"].values())
    naive = results["naive"]
    positive(naive, ("seconds", "per_queue_ms", "over_states", "over_raw_counts"), "naive")
    assert naive["queues"] == results["plan"]["queues"]
    assert all(r > 0 for r in naive["over_cycle"].values())


def test_query_snapshots(results: dict[str, Any]) -> None:
    query = results["query"]
    if query["skipped"]:
        assert "postgresql" not in results["cycle"]
        return
    assert query["rows"] == query["queues"] * 1440
    positive(query, ("insert_s", "insert_rows_per_s"), "query")
    for key in ("store", "grpc"):
        positive(query[key], LATENCY_KEYS, f"query.{key}")
        assert len(query[key]["samples_ms"]) == query[key]["calls"]
        assert query[key]["gc_full_collections"] >= 0
    assert query["grpc"]["response_bytes"] > 0
    assert query["store"]["points_with_data"] == query["grpc"]["points_with_data"] == [1440]


def test_trend_queries_read_rollups(results: dict[str, Any]) -> None:
    query = results["query"]
    if query["skipped"]:
        return
    rolled = query["rollups"]
    # SnapshotStore.rollup wrote one rollup per queue and hour of the minute rows; the copies fill the days.
    assert rolled["rolled"] == query["queues"] * 24
    assert rolled["rows"] == query["queues"] * 24 * rolled["days"]
    assert set(query["trends"]) == {"7d", "30d"}
    for key, trend in query["trends"].items():
        # Whole hours from the range's start to now: the partial first hour and the current one too.
        assert trend["points"] in (24 * trend["days"], 24 * trend["days"] + 1), key
        assert trend["resolution"] == "hourly" and trend["step_s"] == 3600
        for side in ("store", "grpc"):
            positive(trend[side], LATENCY_KEYS, f"query.trends.{key}.{side}")
            assert len(trend[side]["samples_ms"]) == trend[side]["calls"]
            # Every call returned every hour with data, the last from the current hour's minute rows.
            assert trend[side]["points_with_data"] == [trend["points"]], f"{key}.{side}"
        assert trend["grpc"]["response_bytes"] > 0


def test_targets_and_findings(results: dict[str, Any]) -> None:
    expected = len(results["cycle"]) + 1 + (0 if results["query"]["skipped"] else 6)
    assert len(results["targets"]) == expected
    assert {t["verdict"] for t in results["targets"]} <= {"PASS", "MISS"}
    assert results["findings"]


def test_ratios_for_the_check(results: dict[str, Any]) -> None:
    cycles = {f"naive_over_cycle.{kind}" for kind in results["cycle"]}
    ratios_measured(results["ratios"], cycles | {"naive_over_counts_phase", "counts_phase_over_raw_pipeline"})


async def test_a_cycle_minute_removed_between_cycles_leaves_the_loaded_history_whole(tmp_path: Path) -> None:
    # The history is loaded once the cycles' minute may already be over: that minute is then one of the
    # history's own, and re-running a cycle must not take it from the history queues (it used to: the
    # smoke run then read back 1,439 of 1,440 minutes, in runs that crossed a minute boundary).
    now = floor_time(datetime.now(UTC), MINUTE)
    async with AsyncExitStack() as stack:
        db = await open_sqlite(tmp_path, stack)
        store = SnapshotStore(db.engine, clock=lambda: now)
        await store.write(history_rows("history-000", 0, now, 60, summary_pool(4)))
        await store.write(history_rows("cycle-queue", 1, now, 60, summary_pool(4)))
        assert await db.delete_minute(now - MINUTE, ["cycle-queue"]) == 1
        points, _ = await store.query("history-000", now - 60 * MINUTE, now, MINUTE)
        assert sum(p.has_data for p in points) == 60
