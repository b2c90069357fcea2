"""A target is PASS only on a whole, error-free sample: the report functions on fabricated figures.

Each case starts from figures that meet every target (checked to PASS), then empties a sample or adds
errors or time-outs: the same figures must then be a MISS that says why. No benchmark runs here.
"""

from __future__ import annotations

from typing import Any

from bench import collector_report, gateway_report, monitor_report, report, text, verdicts
from tests.support.bench import clean_beats, clean_calls, clean_page_encode

Results = dict[str, Any]


def _verdicts(rows: list[Results]) -> dict[str, str]:
    return {row["name"]: row["verdict"] for row in rows}


def _row(rows: list[Results], starts: str) -> Results:
    (row,) = [row for row in rows if row["name"].startswith(starts)]
    return row


# --- the rule itself ---------------------------------------------------------------------------------


def test_a_met_target_on_a_clean_sample_passes() -> None:
    row = verdicts.target("x", "p99 < 50 ms", "p99 3 ms", True, verdicts.case_problems({"calls": 10}))
    assert row["verdict"] == "PASS" and "why" not in row


def test_an_empty_sample_is_a_miss_even_when_its_figure_meets_the_target() -> None:
    # A p99 of no calls is 0 ms, which is "below 50 ms".
    row = verdicts.target("x", "p99 < 50 ms", "p99 0 ms", True, verdicts.case_problems({"calls": 0}))
    assert row == {
        "name": "x",
        "target": "p99 < 50 ms",
        "measured": "p99 0 ms",
        "verdict": "MISS",
        "why": "empty sample",
    }


def test_errors_time_outs_and_drops_each_say_why() -> None:
    case = {"calls": 10, "errors": 2, "timeouts": 1, "dropped": 4, "open_errors": 0}
    assert verdicts.case_problems(case, "50 callers") == [
        "50 callers: 2 errors",
        "50 callers: 1 time-outs",
        "50 callers: 4 dropped",
    ]
    assert verdicts.case_problems({"beats": 0, "errors": 1}) == ["empty sample", "1 errors"]


def test_the_printed_line_says_why_a_target_missed() -> None:
    row = verdicts.target("ListJobs", "p99 < 50 ms", "p99 2 ms", True, ["3 time-outs"])
    (line,) = text.targets_lines([row])[2:]
    assert line == "  MISS  ListJobs: p99 < 50 ms -- measured p99 2 ms (counted as MISS: 3 time-outs)"


# --- heartbeat ---------------------------------------------------------------------------------------


def _heartbeat(unary: Results | None = None, list_case: Results | None = None) -> Results:
    return {
        "unary": {"heartbeat": unary or clean_beats(), "paced": clean_beats(offered_per_s=10_000)},
        "replicas": {
            "heartbeat": {"one": clean_beats(), "two": clean_beats()},
            "scaling": {"heartbeat": 2.0},
        },
        "stream": clean_beats(open_errors=0),
        "list": {"workers": 100_000, "cases": {"page_50": list_case or {"calls": 500, "p99_ms": 3.0}}},
    }


def test_heartbeat_targets_pass_on_clean_figures() -> None:
    assert set(_verdicts(report.targets(_heartbeat())).values()) == {"PASS"}


def test_heartbeat_beats_with_errors_miss() -> None:
    row = _row(report.targets(_heartbeat(unary=clean_beats(errors=3))), "Beat (unary), closed loop")
    assert (row["verdict"], row["why"]) == ("MISS", "3 errors")


def test_heartbeat_list_with_no_calls_misses() -> None:
    rows = report.targets(_heartbeat(list_case={"calls": 0, "p99_ms": 0.0}))
    row = _row(rows, "ListWorkers first page")
    assert (row["verdict"], row["why"]) == ("MISS", "empty sample")


def test_heartbeat_scaling_misses_when_either_run_failed() -> None:
    results = _heartbeat()
    results["replicas"]["heartbeat"]["two"] = clean_beats(dropped=5)
    row = _row(report.targets(results), "Beat (unary), 2 server processes")
    assert (row["verdict"], row["why"]) == ("MISS", "2 processes: 5 dropped")


# --- monitor -----------------------------------------------------------------------------------------


def _monitor(concurrent: Results) -> Results:
    board = {rpc: {"concurrent": concurrent} for rpc in ("overview", "queues")}
    return {
        "plan": {"callers": 50, "queues": 100, "page_size": 50},
        "board": board,
        "board_live0": board,
        "jobs": {"jobs": 1_000_000, "grpc": clean_calls()},
    }


def test_monitor_targets_pass_on_clean_figures() -> None:
    assert set(_verdicts(monitor_report.targets(_monitor(clean_calls()))).values()) == {"PASS"}


def test_monitor_board_calls_with_errors_or_time_outs_miss() -> None:
    rows = monitor_report.targets(_monitor(clean_calls(timeouts=2, errors=1)))
    board = [row for row in rows if not row["name"].startswith("ListJobs")]
    assert len(board) == 4
    assert {(row["verdict"], row["why"]) for row in board} == {("MISS", "1 errors; 2 time-outs")}
    assert _row(rows, "ListJobs")["verdict"] == "PASS"


# --- collector ---------------------------------------------------------------------------------------


def _cycle_run(**changes: Any) -> Results:
    return {"rows_written": 1000, "queue_errors": 0, "database_error": ""} | changes


def _collector(runs: list[Results], reps: int = 5) -> Results:
    cycle = {"label": "SQLite", "queues": 1000, "median_ms": 400.0, "min_ms": 390.0, "runs": runs}
    return {
        "plan": {"queues": 1000},
        "cycle": {"sqlite": cycle},
        "phases_alone": {"reps": reps, "states_ms": 20.0, "raw_counts_ms": 10.0, "states_over_raw": 2.0},
        "query": {"skipped": True},
    }


def test_collector_targets_pass_on_clean_figures() -> None:
    assert set(_verdicts(collector_report.targets(_collector([_cycle_run()]))).values()) == {"PASS"}


def test_collector_cycles_with_errors_or_missing_rows_miss() -> None:
    runs = [_cycle_run(queue_errors=2), _cycle_run(rows_written=990, database_error="locked")]
    row = _row(collector_report.targets(_collector(runs)), "one collection cycle")
    assert (row["verdict"], row["why"]) == ("MISS", "2 queue errors; 1 database errors; 10 rows not written")


def test_collector_cycles_writing_more_rows_than_queues_are_not_rows_missing() -> None:
    # A cycle that also writes rows of an earlier minute writes more rows than there are queues.
    row = _row(collector_report.targets(_collector([_cycle_run(rows_written=2142)])), "one collection cycle")
    assert row["verdict"] == "PASS"


def test_collector_with_no_cycles_or_reps_misses() -> None:
    rows = collector_report.targets(_collector([], reps=0))
    assert set(_verdicts(rows).values()) == {"MISS"}
    assert {row["why"] for row in rows} == {"empty sample"}


# --- gateway -----------------------------------------------------------------------------------------


def _stream(clients: int, transitions: int) -> Results:
    return {
        "clients": clients,
        "opened": clients,
        "ended_early": 0,
        "dropped": 0,
        "transitions": [{"missing": 0}] * transitions,
    }


def test_gateway_stream_passes_with_every_client_and_transition() -> None:
    assert gateway_report._stream_target(_stream(500, 5))["verdict"] == "PASS"


def test_gateway_stream_with_no_client_or_no_transition_misses() -> None:
    row = gateway_report._stream_target(_stream(0, 0))
    assert (row["verdict"], row["why"]) == ("MISS", "clients: empty sample; transitions: empty sample")
    assert gateway_report._stream_target(_stream(500, 0))["verdict"] == "MISS"


def test_a_row_without_a_number_is_info_unless_its_sample_failed() -> None:
    assert (
        verdicts.info("x", "report p99", "p99 3 ms", verdicts.case_problems({"calls": 10}))["verdict"]
        == "INFO"
    )
    row = verdicts.info("x", "report p99", "p99 0 ms", verdicts.case_problems({"calls": 0, "timeouts": 2}))
    assert (row["verdict"], row["why"]) == ("MISS", "empty sample; 2 time-outs")


def _reads(http: Results) -> Results:
    pair = {"http": http | {"p99_ms": 4.0}, "grpc": clean_calls()}
    return {rpc: {"concurrent": pair} for rpc in ("overview", "queues")}


def _gateway(http: Results) -> Results:
    stream = _stream(500, 5) | {"median_last_ms": 20.0, "worst_last_ms": 40.0}
    stream["transitions"] = [{"missing": 0, "reached": 500}] * 5
    reads = _reads(http)
    ratios = {f"{rpc}_concurrent": {"p99": 1.0} for rpc in reads}
    return {
        "plan": {"callers": 100},
        "reads": reads,
        "http_over_grpc": ratios,
        "stream": stream,
        "page_encode": clean_page_encode(),
    }


def test_page_encode_passes_within_a_millisecond_and_misses_otherwise() -> None:
    assert gateway_report._encode_target(clean_page_encode())["verdict"] == "PASS"
    slow = clean_page_encode(ours={"count": 2000, "p50_ms": 1.2, "p99_ms": 2.0})
    assert gateway_report._encode_target(slow)["verdict"] == "MISS"
    differing = gateway_report._encode_target(clean_page_encode(errors=1))
    assert (differing["verdict"], differing["why"]) == ("MISS", "1 differing bodies")
    short = gateway_report._encode_target(clean_page_encode(jobs_per_page=40))
    assert short["verdict"] == "MISS" and "only 40 jobs" in short["why"]
    empty = gateway_report._encode_target(clean_page_encode(pages=0))
    assert (empty["verdict"], empty["why"]) == ("MISS", "empty sample")


def test_gateway_reads_are_info_on_clean_figures_and_miss_on_failed_calls() -> None:
    clean = gateway_report.targets(_gateway(clean_calls()))
    assert {row["verdict"] for row in clean} == {"INFO", "PASS"}
    failed = gateway_report.targets(_gateway(clean_calls(errors=3)))
    for name in ("GET /api/v1/overview", "GET /api/v1/queues"):
        row = _row(failed, name)
        assert (row["verdict"], row["why"]) == ("MISS", "HTTP: 3 errors")
