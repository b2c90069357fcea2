"""What every benchmark prints and writes the same way: targets, findings, the JSON, the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

PlanT = TypeVar("PlanT")


def targets_lines(targets: Sequence[Mapping[str, Any]]) -> list[str]:
    """The targets block: verdict, name, target and what was measured, one line each."""
    lines = ["", "Targets (informational; the exit status is 0 either way)"]
    lines += [_target_line(t) for t in targets]
    return lines


def _target_line(t: Mapping[str, Any]) -> str:
    why = f" (counted as MISS: {t['why']})" if t.get("why") else ""
    return f"  {t['verdict']:<5} {t['name']}: {t['target']} -- measured {t['measured']}{why}"


def findings_lines(title: str, results: Mapping[str, Any]) -> list[str]:
    """Findings, notes and warnings of a run, and how its keys were cleaned up."""
    lines = ["", title]
    lines += [f"  - {line}" for line in results["findings"]]
    lines += [f"  note: {n}" for n in results.get("notes", [])]
    lines += [f"  ! {w}" for w in results["warnings"]]
    cleanup = results["cleanup"]
    if cleanup:
        lines.append(
            f"  Cleanup: {cleanup['keys_deleted']:,} keys of the run deleted in {cleanup['seconds']:.1f} s."
        )
    return lines


def write_json(results: Mapping[str, Any], path: Path) -> None:
    """The results as JSON."""
    path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main(
    prog: str,
    description: str,
    *,
    plans: tuple[PlanT, PlanT],
    run: Callable[[PlanT], dict[str, Any]],
    table: Callable[[dict[str, Any]], str],
    results_path: Path,
    quick_help: str,
    argv: Sequence[str] | None,
) -> int:
    """Parse --quick / --output, run the (full, quick) plan, print the table, write the JSON."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument(
        "--output", type=Path, default=results_path, help=f"JSON results (default {results_path})"
    )
    args = parser.parse_args(argv)
    full, quick = plans
    return publish(run(quick if args.quick else full), table, args.output)


def publish(results: dict[str, Any], table: Callable[[dict[str, Any]], str], output: Path) -> int:
    """Print the table, write the JSON to `output`; the exit status, 0 (the targets are informational)."""
    print(table(results))
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json(results, output)
    print(f"\nResults: {output}")
    return 0
