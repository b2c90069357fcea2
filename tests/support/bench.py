"""Running a benchmark's quick mode from a test, and the shape checks its figures get."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_quick(module: str, output: Path, timeout: float) -> tuple[str, dict[str, Any]]:
    """Run `python -m <module> --quick --output <output>`; its printed report and its JSON results."""
    return run_bench(module, ["--quick"], output, timeout)


def run_bench(
    module: str, options: list[str], output: Path, timeout: float, env: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Run `python -m <module> <options> --output <output>` (in `env` when given); its printed report and
    its JSON results."""
    with subprocess.Popen(
        [sys.executable, "-m", module, *options, "--output", str(output)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as run:
        try:
            stdout, stderr = run.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first, so the benchmark stops the processes it started and removes what it made.
            run.terminate()
            stdout, stderr = run.communicate(timeout=60)
            raise AssertionError(
                f"{module} did not finish within {timeout:.0f} s\n{stdout}{stderr}"
            ) from None
    assert run.returncode == 0, stdout + stderr
    data: dict[str, Any] = json.loads(output.read_text())
    return stdout, data


def positive(section: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Each of `keys` is a number above zero."""
    for key in keys:
        assert isinstance(section[key], int | float), f"{where}.{key}"
        assert section[key] > 0, f"{where}.{key} = {section[key]}"


def not_negative(section: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Each of `keys` is a number, zero or above."""
    for key in keys:
        assert isinstance(section[key], int | float), f"{where}.{key}"
        assert section[key] >= 0, f"{where}.{key} = {section[key]}"


def ratios_measured(ratios: dict[str, Any], names: set[str]) -> None:
    """Ratios for `bench.check` that are exactly `names`, each with a value above 0 and a direction."""
    assert set(ratios) == names
    for name, entry in ratios.items():
        assert entry["better"] in ("higher", "lower"), name
        assert entry["value"] is not None and entry["value"] > 0, f"{name}: {entry}"


def stamped(results: dict[str, Any]) -> None:
    """A quick run's JSON says its mode and the commit it measured."""
    assert results["mode"] == "quick"
    assert isinstance(results["commit"], str) and results["commit"]


def clean_calls(**changes: Any) -> dict[str, Any]:
    """Figures of a batch of calls with no failure, that meet every latency target; `changes` on top."""
    return {
        "calls": 500,
        "errors": 0,
        "timeouts": 0,
        "p50_ms": 1.0,
        "p99_ms": 4.0,
        "calls_per_s": 900.0,
        "server_cpu_ms_per_call": 0.8,
    } | changes


def clean_page_encode(**changes: Any) -> dict[str, Any]:
    """Figures of the gateway bench's page-encode phase that meet its target; `changes` on top."""
    return {
        "pages": 100,
        "jobs_per_page": 100,
        "body_bytes": 22_000,
        "samples": 2000,
        "ours": {"count": 2000, "p50_ms": 0.6, "p99_ms": 1.5},
        "reference": {"count": 2000, "p50_ms": 1.8, "p99_ms": 4.0},
        "errors": 0,
    } | changes


def clean_beats(**changes: Any) -> dict[str, Any]:
    """Figures of a beat window with no failure, that meet every heartbeat target; `changes` on top."""
    return {
        "beats": 300_000,
        "beats_per_s": 20_000.0,
        "p99_ms": 5.0,
        "errors": 0,
        "dropped": 0,
        "machine_busy_pct": 50.0,
        "machine_steal_pct": 0.0,
    } | changes
