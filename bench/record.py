"""What a run records for `python -m bench.check`: where its JSON goes, the commit, its ratios.

Only ratios are compared across runs: each one sets the service against a reference measured in the
same run on the same machine (an echo server, a naive loop, bull-board, gRPC direct), so a slower or
busier machine moves both sides. Absolute times are not comparable from one run to the next.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "build" / "bench"
BENCHES = ("heartbeat", "collector", "monitor", "gateway")

Better = Literal["higher", "lower"]
Ratio = dict[str, Any]  # {"value": float | None, "better": Better}, and "why" when there is no value

# Ours over a reference under the same load: which way is better for each kind of ratio.
BETTER: dict[str, Better] = {
    "throughput": "higher",
    "calls_per_s": "higher",
    "p50": "lower",
    "p99": "lower",
    "server_cpu_per_call": "lower",
}


def results_path(bench: str) -> Path:
    """Where `python -m bench.<bench>` writes its JSON unless told otherwise."""
    return RESULTS_DIR / f"{bench}.json"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def git_commit() -> str:
    """The commit measured: HEAD, with "-dirty" when the tree has changes; "unknown" outside git."""
    try:
        head = _git("rev-parse", "HEAD")
        # Untracked files count too (ignored ones do not): a new module changes what runs.
        changed = _git("status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if changed else head


def run_header(plan: Any) -> dict[str, Any]:
    """What a run's JSON starts with: its mode (quick, full or custom), the commit measured, its plan."""
    return {"mode": plan.mode, "commit": git_commit(), "plan": asdict(plan)}


def ratio_entry(value: float, better: Better, problems: Sequence[str] = ()) -> Ratio:
    """A ratio for the check; without a value when its samples were empty or failed (it cannot pass)."""
    if problems:
        return {"value": None, "better": better, "why": "; ".join(problems)}
    if not math.isfinite(value) or value <= 0:
        return {"value": None, "better": better, "why": "no value (one side measured nothing)"}
    return {"value": value, "better": better}


def ratio_group(
    prefix: str, values: Mapping[str, float], names: Sequence[str], problems: Sequence[str]
) -> dict[str, Ratio]:
    """`<prefix>.<name>` for each of `names`: ours over a reference, all from the same measurements."""
    return {f"{prefix}.{name}": ratio_entry(values.get(name, 0.0), BETTER[name], problems) for name in names}
