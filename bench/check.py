"""Compare the last run's ratios (build/bench/*.json) with bench/baselines.json.

    uv run python -m bench.check            # the table; exit 1 when a ratio got worse than allowed
    uv run python -m bench.check --update   # bench/baselines.json from the results in build/bench

Only ratios of runs of the same mode are compared, never absolute times (see bench/record.py). Exit
status: 0 when every baseline ratio was measured again and none got worse in its bad direction by more
than it is allowed (20 %, 40 % for throughput; latency percentiles and ratios against bull-board are
only watched, see TOLERANCES); 1 on such a regression or on a baseline ratio this run has no value for
(an empty sample or failed calls never pass); 2 when there is nothing to compare, with the command to
run.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .record import BENCHES, RESULTS_DIR, ROOT

BASELINES = ROOT / "bench" / "baselines.json"
THRESHOLD = 0.20  # a ratio more than this much worse than its baseline is a regression
# How much worse a ratio may get, by what it measures, from the spread of full runs of the same code on
# the shared 2-core machine (largest over smallest value; bench/README.md): CPU per call, efficiency,
# scaling and the collector's phase ratios moved at most 1.15x, so they are held to THRESHOLD; throughput
# ratios moved 1.16-1.4x, so they get 40 %. Latency percentiles of closed-loop runs (1.1-4.2x) and any
# ratio against bull-board (a Node process on the same 2 cores: 1.3-14x) move more than any regression
# worth catching, with no code changed: they are shown and watched, never fail the check. An empty
# sample or failed calls fail it whatever the ratio (MISSING).
TOLERANCES: tuple[tuple[str, float | None], ...] = (
    ("list_queues_vs_bull_board.", None),
    ("page_encode_vs_json_format.p50", THRESHOLD),  # alternating samples in one process: stable
    (".p50", None),
    (".p99", None),
    (".calls_per_s", 0.40),
    (".throughput", 0.40),
)
STATUSES = ("OK", "REGRESSION", "WATCH", "MISSING", "NEW")
FAILING = ("REGRESSION", "MISSING")

Json = dict[str, Any]


class CheckError(Exception):
    """There is nothing to compare; the message names the command that makes it."""


@dataclass(frozen=True, slots=True)
class Row:
    """One ratio: its baseline, this run's value, and the verdict."""

    bench: str
    name: str
    better: str
    baseline: float | None
    now: float | None
    status: str
    note: str = ""

    @property
    def change(self) -> float | None:
        """This run against the baseline, as a fraction (+0.25 = 25 % higher)."""
        if self.baseline is None or self.now is None:
            return None
        return (self.now - self.baseline) / self.baseline


def _bench_command(bench: str) -> str:
    return f"`make bench` (or `uv run python -m bench.{bench}`)"


def load_results(results_dir: Path) -> dict[str, Json]:
    """Each bench's results in the directory, by bench name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(results_dir.glob("*.json"))}


def load_baselines(path: Path) -> dict[str, Json]:
    """The baselines file; a missing one says how to make it."""
    if not path.exists():
        raise CheckError(f"no {path}: run `make bench`, then `uv run python -m bench.check --update`")
    baselines: dict[str, Json] = json.loads(path.read_text())
    return baselines


def _worse_by(baseline: float, now: float, better: str) -> float:
    """How much worse `now` is than `baseline` as a fraction of it (negative when better)."""
    change = (now - baseline) / baseline
    return -change if better == "higher" else change


def tolerance(name: str) -> float | None:
    """How much worse than its baseline a ratio may get (a fraction), or None when it is only watched."""
    for pattern, allowed in TOLERANCES:
        # A pattern ending in "." is a prefix; any other, a suffix.
        if name.startswith(pattern) if pattern.endswith(".") else name.endswith(pattern):
            return allowed
    return THRESHOLD


def _allowed(name: str) -> str:
    allowed = tolerance(name)
    return "watch" if allowed is None else f"{allowed:.0%}"


def compare_ratio(bench: str, name: str, baseline: Json | None, now: Json | None) -> Row:
    """The verdict on one ratio: NEW, MISSING (no value now), REGRESSION, WATCH (a watched ratio more
    than THRESHOLD worse: shown, not failing) or OK."""
    value = now.get("value") if now else None
    if baseline is None:
        assert now is not None  # a name comes from one side or the other
        return Row(bench, name, now["better"], None, value, "NEW", now.get("why", ""))
    base, better = float(baseline["value"]), str(baseline["better"])
    if value is None:
        why = now.get("why", "no value") if now else "not in this run"
        return Row(bench, name, better, base, None, "MISSING", why)
    worse, allowed = _worse_by(base, float(value), better), tolerance(name)
    if allowed is None:
        status = "WATCH" if worse > THRESHOLD else "OK"
    else:
        status = "REGRESSION" if worse > allowed else "OK"
    return Row(bench, name, better, base, float(value), status)


def compare_bench(bench: str, baseline: Json | None, results: Json | None, results_dir: Path) -> list[Row]:
    """Every ratio of one bench; raises CheckError when its results cannot be compared at all."""
    if results is None:
        raise CheckError(f"{bench}: no {results_dir / f'{bench}.json'}: run {_bench_command(bench)}")
    base_ratios: Mapping[str, Json] = {}
    if baseline is not None:
        if results["mode"] != baseline["mode"]:
            raise CheckError(
                f"{bench}: the results are of a {results['mode']} run, the baseline of a {baseline['mode']} "
                f"run: run {_bench_command(bench)} without --quick or size options"
            )
        base_ratios = baseline["ratios"]
    now_ratios: Mapping[str, Json] = results.get("ratios", {})
    names = list(base_ratios) + [name for name in now_ratios if name not in base_ratios]
    return [compare_ratio(bench, name, base_ratios.get(name), now_ratios.get(name)) for name in names]


@dataclass
class Comparison:
    """All rows, what could not be compared, and where each side came from."""

    rows: list[Row]
    errors: list[str]
    sources: list[str]

    def exit_code(self) -> int:
        """2 when something could not be compared, 1 on a failing ratio, else 0."""
        if self.errors:
            return 2
        return 1 if any(row.status in FAILING for row in self.rows) else 0


def _source(bench: str, baseline: Json | None, results: Json | None) -> str:
    base = f"{baseline['mode']} run of {baseline['commit']}" if baseline else "none"
    now = f"{results['mode']} run of {results.get('commit', 'unknown')}" if results else "none"
    return f"{bench}: baseline: {base}; now: {now}"


def compare(results_dir: Path, baselines_path: Path) -> Comparison:
    """Every bench with a baseline or results, compared ratio by ratio."""
    baselines, results = load_baselines(baselines_path), load_results(results_dir)
    if not baselines and not results:
        raise CheckError(f"no results in {results_dir} and no baselines: run `make bench`")
    outcome = Comparison([], [], [])
    for bench in [*baselines, *(name for name in results if name not in baselines)]:
        baseline, run = baselines.get(bench), results.get(bench)
        outcome.sources.append(_source(bench, baseline, run))
        try:
            outcome.rows += compare_bench(bench, baseline, run, results_dir)
        except CheckError as exc:
            outcome.errors.append(str(exc))
    return outcome


# --- the table ---------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _percent(change: float | None) -> str:
    return "-" if change is None else f"{100.0 * change:+.1f}%"


def table(outcome: Comparison) -> str:
    """The printed comparison: a row per ratio, then what could not be compared."""
    width = max((len(row.name) for row in outcome.rows), default=5)
    lines = [*outcome.sources, ""]
    lines.append(
        f"{'bench':<10} {'ratio':<{width}} {'better':<7}{'baseline':>10}{'now':>10}{'change':>9}"
        f"{'allowed':>8}  status"
    )
    for row in outcome.rows:
        note = f"  ({row.note})" if row.note else ""
        lines.append(
            f"{row.bench:<10} {row.name:<{width}} {row.better:<7}{_number(row.baseline):>10}"
            f"{_number(row.now):>10}{_percent(row.change):>9}{_allowed(row.name):>8}  {row.status}{note}"
        )
    counts = {status: sum(row.status == status for row in outcome.rows) for status in STATUSES}
    lines += [
        "",
        ", ".join(f"{n} {status}" for status, n in counts.items())
        + " (allowed: how much worse a ratio may get; watch: shown, never failing)",
    ]
    lines += [f"error: {error}" for error in outcome.errors]
    return "\n".join(lines)


# --- --update ----------------------------------------------------------------------------------------


def _baseline_problem(bench: str, results: Json) -> str:
    """Why a bench's results cannot become its baseline; '' when they can."""
    commit = str(results.get("commit", "unknown"))
    if results["mode"] != "full":
        return f"{bench}: a {results['mode']} run; baselines come from full runs: run {_bench_command(bench)}"
    if commit == "unknown" or commit.endswith("-dirty"):
        return (
            f"{bench}: measured {commit}; baselines come from a committed tree: commit, then run `make bench`"
        )
    return ""


def baselines_from(results: Mapping[str, Json]) -> tuple[dict[str, Json], list[str]]:
    """The baselines of one full run of one commit, and the ratios left out for having no value."""
    if not results:
        raise CheckError("no results: run `make bench`")
    problems = [p for p in (_baseline_problem(bench, r) for bench, r in results.items()) if p]
    commits = sorted({str(r.get("commit")) for r in results.values()})
    if len(commits) > 1:
        problems.append(
            f"the results come from {len(commits)} commits ({', '.join(commits)}): run `make bench`"
        )
    if problems:
        raise CheckError("; ".join(problems))
    baselines: dict[str, Json] = {}
    left_out: list[str] = []
    for bench, run in results.items():
        ratios = {}
        for name, entry in run["ratios"].items():
            if entry["value"] is None:
                left_out.append(f"{bench} {name}: {entry.get('why', 'no value')}")
            else:
                ratios[name] = {"value": entry["value"], "better": entry["better"]}
        baselines[bench] = {"mode": run["mode"], "commit": run["commit"], "ratios": ratios}
    return baselines, left_out


def update(results_dir: Path, baselines_path: Path) -> str:
    """Write the baselines from the results; what was written and what was left out."""
    baselines, left_out = baselines_from(load_results(results_dir))
    baselines_path.write_text(json.dumps(baselines, indent=2, sort_keys=True) + "\n")
    absent = [bench for bench in BENCHES if bench not in baselines]
    written = ", ".join(f"{bench} ({len(b['ratios'])} ratios)" for bench, b in baselines.items())
    lines = [f"{baselines_path}: {written}"]
    lines += [f"  left out, no value: {item}" for item in left_out]
    lines += [f"  no results, not in the baselines: {bench}" for bench in absent]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Compare (or, with --update, write the baselines) and print the outcome."""
    parser = argparse.ArgumentParser(prog="python -m bench.check", description=__doc__.split("\n")[0])
    parser.add_argument("--update", action="store_true", help="write the baselines from the results")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help=f"default {RESULTS_DIR}")
    parser.add_argument("--baselines", type=Path, default=BASELINES, help=f"default {BASELINES}")
    args = parser.parse_args(argv)
    try:
        if args.update:
            print(update(args.results, args.baselines))
            return 0
        outcome = compare(args.results, args.baselines)
    except CheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(outcome))
    return outcome.exit_code()


if __name__ == "__main__":
    sys.exit(main())
