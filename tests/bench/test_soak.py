"""`python -m bench.soak` at a small size for a minute: every suite process sampled, every load counted,
the targets judged.

Only the shape of the results is checked, never a time or a memory figure: on a shared machine a
minute says nothing about either, and the soak itself measures, it does not judge.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bench import positive, run_bench
from tests.support.processes import hermetic_env

PROCESSES = {"heartbeat", "collector", "monitor", "incidents", "gateway"}
SIZES = ["--minutes", "0.75", "--warmup-minutes", "0.25", "--workers", "200", "--queues", "5"]
SIZES += ["--sse", "3", "--pollers", "2"]
# About a minute and a half on a quiet 2-core machine; more when the machine is shared.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def run_output(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, postgres_url: str | None
) -> tuple[str, dict[str, Any]]:
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    env = {**hermetic_env(), "REDIS_URL": redis_url, "DATABASE_URL": postgres_url}
    return run_bench("bench.soak", SIZES, tmp_path_factory.mktemp("soak") / "soak.json", 280, env)


@pytest.fixture(scope="module")
def results(run_output: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return run_output[1]


def test_every_suite_process_is_sampled(results: dict[str, Any]) -> None:
    assert results["mode"] == "custom"
    assert set(results["processes"]) == PROCESSES
    duration_s = results["plan"]["minutes"] * 60
    for name, proc in results["processes"].items():
        samples = proc["samples"]
        # One sample every sample_s over the run, from its start to its end.
        assert len(samples) >= duration_s / results["plan"]["sample_s"], name
        assert samples[0][0] < results["plan"]["sample_s"] and samples[-1][0] >= duration_s - 1, name
        assert all(rss > 10 * 2**20 for _, rss, _ in samples), name
        assert proc["exit_code"] is None, f"{name} exited during the run"
        positive(proc["rss"], ("warmup_mb", "end_mb", "max_mb"), f"{name}.rss")
        assert proc["rss"]["samples_after_warmup"] >= 2, name


def test_every_load_ran(results: dict[str, Any]) -> None:
    plan = results["plan"]
    beats, rate = results["beats"], plan["workers"] / plan["beat_interval_s"]
    # Paced at workers / interval: well over half of it answered whatever the machine does.
    assert beats["beats"] > 0.5 * rate * (plan["minutes"] - plan["warmup_minutes"]) * 60
    assert beats["warmup"]["beats"] > 0.5 * rate * plan["warmup_minutes"] * 60
    sse = results["sse"]
    assert sse["opened"] == sse["clients"] == plan["sse"]
    assert sse["events"].get("overview", 0) > 0 and sse["events"].get("worker", 0) > 0, sse["events"]
    for rpc in ("overview", "queues"):
        assert results["polls"][rpc]["calls"] > 0, rpc
    activity = results["queue_activity"]
    assert activity["added"] > 0 and activity["completed"] > 0, activity
    assert results["collector"]["cycles"], "no collection logged"
    assert results["cleanup"]["keys_deleted"] > 0


def test_targets_are_judged(results: dict[str, Any]) -> None:
    names = [t["name"] for t in results["targets"]]
    assert names == [
        *(
            f"{p} RSS after the warm-up"
            for p in ("heartbeat", "collector", "monitor", "incidents", "gateway")
        ),
        "errors",
        "GET /api/v1/overview after the warm-up",
    ]
    for row in results["targets"]:
        assert row["verdict"] in ("PASS", "MISS"), row
        assert row["target"] and row["measured"], row
    assert set(results["errors"]) >= {
        "beats",
        "beats_warmup",
        "sse_open",
        "sse_ended_early",
        "http_overview",
        "http_queues",
    }


def test_report_is_printed(run_output: tuple[str, dict[str, Any]]) -> None:
    printed = run_output[0]
    assert "Memory (RSS) and CPU after the warm-up, per process" in printed
    assert "Targets (informational" in printed
    for name in PROCESSES:
        assert f"  {name:<10}" in printed, name
