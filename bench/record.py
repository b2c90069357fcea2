"""What a run records for `python -m bench.check`: where its JSON goes, the commit, its ratios.

Only ratios are compared across runs: each one sets the service against a reference measured in the
same run on the same machine (an echo server, a naive loop, bull-board, gRPC direct), so a slower or
busier machine moves both sides. Absolute times are not comparable from one run to the next.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "build" / "bench"
BENCHES = ("heartbeat", "collector", "monitor", "gateway")


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
