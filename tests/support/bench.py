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
    run = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--output", str(output)],
        check=False,  # the assertion below shows the output
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data: dict[str, Any] = json.loads(output.read_text())
    return run.stdout, data


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
