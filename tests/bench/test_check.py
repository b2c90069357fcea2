"""`python -m bench.check` on fabricated results and baselines: what fails, what passes, what it prints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import check

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _results(ratios: dict[str, dict[str, Any]], mode: str = "full", commit: str = COMMIT) -> dict[str, Any]:
    return {"mode": mode, "commit": commit, "ratios": ratios}


def _baselines(bench: str, ratios: dict[str, dict[str, Any]], mode: str = "full") -> dict[str, Any]:
    return {bench: {"mode": mode, "commit": COMMIT, "ratios": ratios}}


class Tree:
    """A results directory and a baselines file in tmp_path; `run` is `python -m bench.check` on them."""

    def __init__(self, root: Path) -> None:
        self.results = root / "build" / "bench"
        self.baselines = root / "baselines.json"
        self.results.mkdir(parents=True)

    def result(self, bench: str, data: dict[str, Any]) -> None:
        _write(self.results / f"{bench}.json", data)

    def baseline(self, data: dict[str, Any]) -> None:
        _write(self.baselines, data)

    def run(self, *args: str) -> int:
        return check.main(["--results", str(self.results), "--baselines", str(self.baselines), *args])


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def _one_ratio(tree: Tree, baseline: float, now: float, better: str) -> int:
    tree.baseline(_baselines("gateway", {"r": {"value": baseline, "better": better}}))
    tree.result("gateway", _results({"r": {"value": now, "better": better}}))
    return tree.run()


@pytest.mark.parametrize(
    ("baseline", "now", "better", "code"),
    [
        (1.0, 0.79, "higher", 1),  # 21 % less of a higher-is-better ratio
        (1.0, 0.81, "higher", 0),  # 19 % less
        (1.0, 1.50, "higher", 0),  # an improvement
        (2.0, 2.42, "lower", 1),  # 21 % more of a lower-is-better ratio
        (2.0, 2.38, "lower", 0),  # 19 % more
        (2.0, 1.00, "lower", 0),  # an improvement: half the latency
        (2.0, 4.00, "higher", 0),  # the same change is good when higher is better
    ],
)
def test_a_ratio_more_than_20_percent_worse_fails(
    tree: Tree, baseline: float, now: float, better: str, code: int
) -> None:
    assert _one_ratio(tree, baseline, now, better) == code


def test_the_table_says_baseline_now_change_and_status(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.baseline(
        _baselines(
            "heartbeat",
            {
                "unary_vs_echo.throughput": {"value": 0.40, "better": "higher"},
                "unary_vs_echo.p99": {"value": 3.0, "better": "lower"},
                "replicas.scaling": {"value": 0.96, "better": "higher"},
            },
        )
    )
    ratios = {
        "unary_vs_echo.throughput": {"value": 0.30, "better": "higher"},
        "unary_vs_echo.p99": {"value": 2.7, "better": "lower"},
        "replicas.efficiency_1_process": {"value": 0.38, "better": "higher"},
    }
    tree.result("heartbeat", _results(ratios))
    assert tree.run() == 1
    rows = {line.split()[1]: line.split()[2:] for line in capsys.readouterr().out.splitlines()[2:-2]}
    assert rows["unary_vs_echo.throughput"] == ["higher", "0.4", "0.3", "-25.0%", "40%", "OK"]
    assert rows["unary_vs_echo.p99"] == ["lower", "3", "2.7", "-10.0%", "watch", "OK"]
    assert rows["replicas.scaling"] == [
        "higher",
        "0.96",
        "-",
        "-",
        "20%",
        "MISSING",
        "(not",
        "in",
        "this",
        "run)",
    ]
    assert rows["replicas.efficiency_1_process"] == ["higher", "-", "0.38", "-", "20%", "NEW"]


@pytest.mark.parametrize(
    ("name", "baseline", "now", "code", "status"),
    [
        # Throughput ratios may lose 40 %.
        ("unary_vs_echo.throughput", 1.0, 0.61, 0, "OK"),
        ("unary_vs_echo.throughput", 1.0, 0.59, 1, "REGRESSION"),
        ("http_vs_grpc.queues.concurrent.calls_per_s", 1.0, 0.59, 1, "REGRESSION"),
        # CPU per call, efficiency and the collector's ratios 20 %.
        ("unary_vs_echo.server_cpu_per_call", 2.0, 2.42, 1, "REGRESSION"),
        ("naive_over_cycle.postgresql", 3.0, 2.3, 1, "REGRESSION"),
        ("page_encode_vs_json_format.p50", 0.4, 0.49, 1, "REGRESSION"),
        # Latency percentiles and ratios against bull-board are watched: shown, never failing.
        ("unary_vs_echo.p99", 2.0, 5.0, 0, "WATCH"),
        ("list_queues_vs_bull_board.live_0s.concurrent.calls_per_s", 3.0, 1.0, 0, "WATCH"),
        ("list_queues_vs_bull_board.live_0s.concurrent.calls_per_s", 3.0, 2.9, 0, "OK"),
    ],
)
def test_what_each_kind_of_ratio_may_lose(
    tree: Tree,
    capsys: pytest.CaptureFixture[str],
    name: str,
    baseline: float,
    now: float,
    code: int,
    status: str,
) -> None:
    better = "lower" if name.endswith(("p50", "p99", "server_cpu_per_call")) else "higher"
    tree.baseline(_baselines("heartbeat", {name: {"value": baseline, "better": better}}))
    tree.result("heartbeat", _results({name: {"value": now, "better": better}}))
    assert tree.run() == code
    assert capsys.readouterr().out.splitlines()[2 + 1].split()[-1] == status


def test_a_watched_ratio_without_a_value_still_fails(tree: Tree) -> None:
    name = "list_queues_vs_bull_board.live_1s.sequential.p99"
    tree.baseline(_baselines("monitor", {name: {"value": 0.05, "better": "lower"}}))
    tree.result("monitor", _results({name: {"value": None, "better": "lower", "why": "empty sample"}}))
    assert tree.run() == 1


def test_a_baseline_ratio_without_a_value_now_fails_and_says_why(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.baseline(_baselines("monitor", {"r": {"value": 1.0, "better": "lower"}}))
    tree.result(
        "monitor", _results({"r": {"value": None, "better": "lower", "why": "bull-board: 3 time-outs"}})
    )
    assert tree.run() == 1
    assert "MISSING  (bull-board: 3 time-outs)" in capsys.readouterr().out


def test_new_ratios_alone_pass(tree: Tree) -> None:
    tree.baseline({})
    tree.result("collector", _results({"r": {"value": 5.0, "better": "higher"}}))
    assert tree.run() == 0


def test_a_missing_results_file_names_the_command(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.baseline(_baselines("collector", {"r": {"value": 5.0, "better": "higher"}}))
    assert tree.run() == 2
    out = capsys.readouterr().out
    assert (
        "collector: no " in out
        and "collector.json: run `make bench` (or `uv run python -m bench.collector`)" in out
    )


def test_a_quick_run_is_not_compared_with_a_full_baseline(
    tree: Tree, capsys: pytest.CaptureFixture[str]
) -> None:
    tree.baseline(_baselines("gateway", {"r": {"value": 1.0, "better": "lower"}}))
    tree.result("gateway", _results({"r": {"value": 1.0, "better": "lower"}}, mode="quick"))
    assert tree.run() == 2
    assert "the results are of a quick run, the baseline of a full run" in capsys.readouterr().out


def test_no_baselines_file_says_how_to_make_one(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    assert tree.run() == 2
    assert "python -m bench.check --update" in capsys.readouterr().err


# --- --update ----------------------------------------------------------------------------------------


def test_update_writes_the_baselines_of_one_full_run(tree: Tree) -> None:
    tree.result("heartbeat", _results({"a": {"value": 0.3, "better": "higher"}}))
    tree.result(
        "monitor",
        _results(
            {"b": {"value": 2.0, "better": "lower"}, "c": {"value": None, "better": "lower", "why": "x"}}
        ),
    )
    assert tree.run("--update") == 0
    assert json.loads(tree.baselines.read_text()) == {
        "heartbeat": {"mode": "full", "commit": COMMIT, "ratios": {"a": {"value": 0.3, "better": "higher"}}},
        "monitor": {"mode": "full", "commit": COMMIT, "ratios": {"b": {"value": 2.0, "better": "lower"}}},
    }
    # The run against its own baselines: every ratio OK, "c" (no value, so no baseline) NEW.
    assert tree.run() == 0


@pytest.mark.parametrize(
    ("mode", "commit", "message"),
    [
        ("quick", COMMIT, "a quick run; baselines come from full runs"),
        ("full", COMMIT + "-dirty", "baselines come from a committed tree"),
        ("full", "unknown", "baselines come from a committed tree"),
    ],
)
def test_update_refuses_quick_or_uncommitted_runs(
    tree: Tree, capsys: pytest.CaptureFixture[str], mode: str, commit: str, message: str
) -> None:
    tree.result("gateway", _results({"r": {"value": 1.0, "better": "lower"}}, mode=mode, commit=commit))
    assert tree.run("--update") == 2
    assert message in capsys.readouterr().err
    assert not tree.baselines.exists()


def test_update_refuses_results_of_several_commits(tree: Tree, capsys: pytest.CaptureFixture[str]) -> None:
    tree.result("gateway", _results({}))
    tree.result("monitor", _results({}, commit="f" * 40))
    assert tree.run("--update") == 2
    assert "the results come from 2 commits" in capsys.readouterr().err
