"""The suite as the soak test runs it: each service and the gateway in a `workermon serve --target`
process of its own, peers named by their `WORKERMON_<SERVICE>_TARGET`, on a PostgreSQL database created
for the run (dropped after it) and the run's Redis prefixes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.pool import NullPool

from workermon_cli.runtime import migrate
from workermon_core.db import normalize_url
from workermon_core.settings import load_settings

from .procs import BenchError, ServerProcess
from .server import free_port

SERVICES = ("heartbeat", "collector", "monitor", "incidents")
PROCESSES = (*SERVICES, "gateway")
NEEDS_POSTGRES = (
    "the soak test runs the suite on PostgreSQL: set DATABASE_URL to a PostgreSQL server it may create "
    "a database on, e.g. DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def postgres_from_env() -> str:
    """DATABASE_URL when it names PostgreSQL; otherwise the run cannot happen (SystemExit says why)."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith(("postgres://", "postgresql")):
        raise SystemExit(NEEDS_POSTGRES)
    return normalize_url(configured)


@dataclass
class RunDatabase:
    """A database of the run's own on the PostgreSQL server of `admin_url`."""

    admin_url: str
    name: str = field(default_factory=lambda: "wm_soak_" + uuid.uuid4().hex[:12])

    @property
    def url(self) -> str:
        """The database's URL for the suite."""
        return str(sa.make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False))

    def _run(self, statement: str) -> None:
        engine = sa.create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(statement))
        finally:
            engine.dispose()

    def create(self) -> None:
        """Create the database (SystemExit when the server does not answer)."""
        try:
            self._run(f'CREATE DATABASE "{self.name}"')
        except sa.exc.OperationalError as exc:
            raise SystemExit(f"{NEEDS_POSTGRES}\n(it did not answer: {str(exc).splitlines()[0]})") from None

    def drop(self) -> None:
        """Drop the database and whatever still connects to it."""
        self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class SuiteProcesses:
    """The five processes, started side by side once migrated; each stopped with `stack` at the latest."""

    def __init__(self, env: Mapping[str, str], logs: Path, stack: ExitStack) -> None:
        ports = {name: free_port() for name in PROCESSES}
        self.http_port = free_port()
        targets = {f"WORKERMON_{name.upper()}_TARGET": f"127.0.0.1:{ports[name]}" for name in SERVICES}
        self.env = {**env, **targets, "WORKERMON_HTTP_PORT": str(self.http_port)}
        self.ports = ports
        self.logs = logs
        self._migrate()
        self.processes: dict[str, ServerProcess] = {}
        for name in PROCESSES:
            command = [sys.executable, "-m", "workermon_cli.main", "serve", "--target", name]
            process_env = {
                **self.env,
                "WORKERMON_GRPC_PORT": str(ports[name]),
                "WORKERMON_DATA_DIR": str(logs / name),
            }
            server = ServerProcess(
                name, [], process_env, logs / f"{name}.log", command=command, announces=False
            )
            server.port = ports[name]
            stack.callback(server.stop)
            self.processes[name] = server

    def _migrate(self) -> None:
        # In this process: a `workermon migrate` process would import the whole suite once more, which
        # takes longer than the migrations themselves.
        asyncio.run(migrate(load_settings(), url=self.env["DATABASE_URL"]))

    @property
    def base_url(self) -> str:
        """The gateway's JSON API."""
        return f"http://127.0.0.1:{self.http_port}/api"

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Block until every service says SERVING and the gateway's /readyz answers 200; seconds taken."""
        began = time.perf_counter()
        waiting = set(PROCESSES)
        while waiting:
            for name in sorted(waiting):
                self.processes[name].check_alive()
                if self._ready(name):
                    waiting.discard(name)
            if time.perf_counter() - began > timeout:
                tails = "\n".join(self.processes[name].tail() for name in sorted(waiting))
                raise BenchError(f"not ready within {timeout:.0f} s: {', '.join(sorted(waiting))}\n{tails}")
            time.sleep(0.2)
        return time.perf_counter() - began

    def _ready(self, name: str) -> bool:
        if name == "gateway":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2) as answer:
                    return bool(answer.status == 200)
            except (urllib.error.URLError, OSError):
                return False
        with grpc.insecure_channel(self.processes[name].target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        """SIGTERM every process (the gateway first, as its clients are gone) and wait for each."""
        for name in reversed(PROCESSES):
            self.processes[name].stop()


def _entries(path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each line of a JSON log with its entry (None for a line that is not a JSON object)."""
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        yield line, entry if isinstance(entry, dict) else None


def log_levels(path: Path) -> Counter[str]:
    """How many lines of a JSON log are at each level (a line that is not JSON counts as `other`)."""
    return Counter(str(entry.get("level", "other")) if entry else "other" for _, entry in _entries(path))


def log_samples(path: Path, levels: tuple[str, ...] = ("error", "critical"), count: int = 3) -> list[str]:
    """The first few lines of a JSON log at one of `levels`, for the report."""
    found = [line[:300] for line, entry in _entries(path) if entry and entry.get("level") in levels]
    return found[:count]


def collector_cycles(path: Path) -> list[dict[str, Any]]:
    """Every collection the collector logged (`collected`): its minute, queues, errors and duration."""
    keys = ("minute", "queues", "written", "errors", "ms")
    return [
        {k: entry.get(k) for k in keys}
        for _, entry in _entries(path)
        if entry and entry.get("event") == "collected"
    ]
