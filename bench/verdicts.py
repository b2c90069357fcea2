"""PASS / MISS beside a target, and why a measurement cannot count: no sample, errors, time-outs.

A figure taken from an empty sample or from calls that failed says nothing about the service (a p99 of
no calls is 0, and failed calls are not in the latencies), so such a target is a MISS, never a PASS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Row = dict[str, Any]

# Counters of calls that did not succeed, as the benches name them.
FAILURE_KEYS = {
    "errors": "errors",
    "timeouts": "time-outs",
    "dropped": "dropped",
    "open_errors": "failed to open",
}


def sample_problems(samples: int, failures: Mapping[str, int], where: str = "") -> list[str]:
    """Why a measurement of `samples` successes and these failure counts cannot count."""
    problems = [] if samples > 0 else ["empty sample"]
    problems += [f"{count:,} {what}" for what, count in failures.items() if count]
    return [f"{where}: {p}" if where else p for p in problems]


def case_problems(case: Mapping[str, Any], where: str = "") -> list[str]:
    """Why a measured case (successful calls or beats, and its failure counters) cannot count."""
    samples = int(case.get("calls", case.get("beats", 0)))
    failures = {label: int(case.get(key, 0)) for key, label in FAILURE_KEYS.items()}
    return sample_problems(samples, failures, where)


def target(name: str, wanted: str, measured: str, met: bool, problems: Sequence[str] = ()) -> Row:
    """A target row: PASS only when the figure meets it and its sample is whole and error-free."""
    row: Row = {
        "name": name,
        "target": wanted,
        "measured": measured,
        "verdict": "PASS" if met and not problems else "MISS",
    }
    if problems:
        row["why"] = "; ".join(problems)
    return row


def info(name: str, wanted: str, measured: str, problems: Sequence[str] = ()) -> Row:
    """A row with no number to meet (INFO); a MISS all the same when its sample is empty or failed."""
    row = target(name, wanted, measured, True, problems)
    if not problems:
        row["verdict"] = "INFO"
    return row
