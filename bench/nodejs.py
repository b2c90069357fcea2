"""The benchmarks' Node project (bench/node): bull-board and the Node BullMQ workload, installed from
its lock on first use."""

from __future__ import annotations

import json
import shutil
import subprocess

from .procs import ROOT

NODE_DIR = ROOT / "bench" / "node"


class NodeUnavailable(RuntimeError):
    """Node or the project's packages cannot be had; the message says why."""


def _install() -> None:
    """`npm ci` when node_modules is missing or older than the lock."""
    marker = NODE_DIR / "node_modules" / ".installed"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise NodeUnavailable("npm is not installed")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_DIR)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode:
        raise NodeUnavailable(
            f"npm ci failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}"
        )
    marker.touch()


def command(script: str) -> list[str]:
    """`node bench/node/<script>`, with the project's packages installed; NodeUnavailable if it cannot."""
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable("node is not installed")
    _install()
    return [node, str(NODE_DIR / script)]


def version() -> str:
    """`node --version`, or "not installed"."""
    node = shutil.which("node")
    if node is None:
        return "not installed"
    return subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def package_version(name: str) -> str:
    """The installed version of one of the project's packages, or "?"."""
    path = NODE_DIR / "node_modules" / name / "package.json"
    return str(json.loads(path.read_text()).get("version", "?")) if path.exists() else "?"
