"""Node BullMQ in tests: tests/node's project installed from its lock, and produce.mjs run and stopped."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node_project() -> str:
    """The node binary, with tests/node's packages installed from its lock (as `make test` does)."""
    node = shutil.which("node")
    assert node, "node (v20+) is required for the Node BullMQ tests; install Node.js"
    npm = shutil.which("npm")
    stamp = NODE_DIR / "node_modules" / ".installed"
    lock = NODE_DIR / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        assert npm, "npm is required to install tests/node's packages"
        subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            check=True,
            capture_output=True,
            timeout=300,
        )
        stamp.touch()
    return node


class NodeProcess:
    """`produce.mjs` running: its `ready` line, and a clean stop."""

    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc = proc
        self.ready = ready

    async def stop(self) -> int:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"stop\n")
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0


async def start_produce(
    redis_url: str, prefix: str, queue: str, mode: str, package: str = "bullmq", script: str = "produce.mjs"
) -> NodeProcess:
    """Run a tests/node script (`produce.mjs` unless told) with Node BullMQ 6 (`bullmq`) or 5 (`bullmq5`)
    and wait for its ready line (failing with its stderr if it exits first)."""
    proc = await asyncio.create_subprocess_exec(
        node_project(),
        str(NODE_DIR / script),
        redis_url,
        prefix,
        queue,
        mode,
        package,
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"{script} exited: {(await proc.stderr.read()).decode()[-2000:]}")
    ready = json.loads(line)
    assert ready["event"] == "ready", ready
    return NodeProcess(proc, ready)
