"""`workermon serve --target all` on its embedded Redis, as real processes in a temporary data directory:
its redis-server (and the suite itself) killed with SIGKILL, the worker registry and the BullMQ jobs are
still there, on the same port; readiness follows the outage and recovers on its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.bull import until
from tests.support.fakes import TEST_SECRET
from tests.support.heartbeat import report
from tests.support.redis_server import (
    aof_written,
    assert_state,
    equals,
    server_pid,
    start_lock,
    when,
    write_state,
)
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel

pytestmark = pytest.mark.slow

WORKERMON = [sys.executable, "-m", "workermon_cli.main"]


def _env(data_dir: Path) -> dict[str, str]:
    """Only the embedded defaults: no REDIS_URL, no DATABASE_URL, nothing of the caller's WORKERMON_*."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WORKERMON_") and name not in {"REDIS_URL", "DATABASE_URL"}
    }
    return {
        **env,
        "WORKERMON_DATA_DIR": str(data_dir),
        "WORKERMON_GRPC_PORT": "0",
        "WORKERMON_HTTP_PORT": "0",
        "WORKERMON_READINESS_INTERVAL_SECONDS": "0.2",
        "WORKERMON_JWT_SECRET": TEST_SECRET,
        "WORKERMON_LOG_FORMAT": "json",
    }


class SuiteProcess:
    """One `workermon serve --target all` process; its JSON log lines are read back from a file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as err:
            self.process = subprocess.Popen(
                [*WORKERMON, "serve", "--target", "all"],
                env=_env(data_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.grpc = self.http = self.redis_url = ""

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log lines of one event, oldest first."""
        lines = [line for line in self.log.read_text().splitlines() if line.startswith("{")]
        return [entry for entry in map(json.loads, lines) if entry.get("event") == name]

    async def ready(self) -> None:
        """Wait for the `serving` line (its addresses), then for /readyz to say every service is SERVING."""

        async def started() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"suite exited: {self.log.read_text()[-3000:]}")
            return bool(self.events("serving"))

        await until(started, limit=60, what="suite serving")
        serving = self.events("serving")[0]
        self.grpc, self.http, self.redis_url = serving["grpc"], serving["http"], serving["redis"]
        await until(lambda: equals(self.readyz(), 200), what="suite ready")

    async def health(self) -> int:
        """The gRPC health of the whole server."""
        async with grpc.aio.insecure_channel(self.grpc) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return int((await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)).status)

    async def readyz(self) -> int:
        """The gateway's /readyz status code."""
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(self.http + "/readyz")).status_code

    def redis_pid(self) -> int:
        pid = server_pid(self.redis_url)
        assert pid is not None, f"nothing answers at {self.redis_url}"
        return pid

    def stop(self) -> int:
        """SIGTERM, as an operator stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A migrated SQLite database and nothing else: the suite's own data directory."""
    data = tmp_path / "data"
    subprocess.run([*WORKERMON, "migrate"], env=_env(data), check=True, capture_output=True, timeout=120)
    return data


@pytest.fixture
def suites(tmp_path: Path) -> Iterator[list[SuiteProcess]]:
    """The suites a test starts (append them); whatever still runs is stopped afterwards."""
    started: list[SuiteProcess] = []
    yield started
    for suite in started:
        suite.stop()


async def _start(data_dir: Path, suites: list[SuiteProcess], name: str) -> SuiteProcess:
    suite = SuiteProcess(data_dir, data_dir.parent / f"{name}.log")
    suites.append(suite)
    await suite.ready()
    return suite


async def _fill(suite: SuiteProcess, authority: TokenAuthority) -> str:
    """A worker in the registry (through HeartbeatService) and a BullMQ job and keys; all in the AOF."""
    async with open_channel(suite.grpc, authority.mint("w-1", "worker")) as channel:
        await pb_grpc.HeartbeatServiceStub(channel).Beat(pb.BeatRequest(report=report("w-1")))
    job_id = await write_state(suite.redis_url)
    await aof_written(suite.redis_url)
    return job_id


async def _assert_kept(suite: SuiteProcess, authority: TokenAuthority, job_id: str) -> None:
    async with open_channel(suite.grpc, authority.mint("test-viewer", "viewer")) as channel:
        reply = await pb_grpc.HeartbeatServiceStub(channel).GetWorker(pb.GetWorkerRequest(worker_id="w-1"))
    assert reply.worker.report.worker_id == "w-1"
    await assert_state(suite.redis_url, job_id)


async def test_suite_and_its_redis_killed_then_started_again_keep_registry_jobs_and_port(
    data_dir: Path, suites: list[SuiteProcess], authority: TokenAuthority
) -> None:
    first = await _start(data_dir, suites, "first")
    job_id = await _fill(first, authority)

    # Both killed outright: the redis-server first (no final save), then the suite.
    os.kill(first.redis_pid(), signal.SIGKILL)
    first.process.kill()
    first.process.wait(10)
    await until(when(lambda: server_pid(first.redis_url) is None), what="redis-server gone")

    second = await _start(data_dir, suites, "second")
    assert second.redis_url == first.redis_url  # the recorded port
    await _assert_kept(second, authority, job_id)
    assert second.stop() == 0


async def test_killed_redis_server_comes_back_under_a_running_suite(
    data_dir: Path, suites: list[SuiteProcess], authority: TokenAuthority
) -> None:
    suite = await _start(data_dir, suites, "suite")
    job_id = await _fill(suite, authority)
    old_pid = suite.redis_pid()

    # Holding the start lock (as another process starting the server would) keeps the outage long
    # enough for readiness to see it, whatever the machine's speed; the supervisor waits for it.
    with start_lock(data_dir / "redis"):
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        await until(
            lambda: equals(suite.health(), health_pb2.HealthCheckResponse.NOT_SERVING), what="NOT_SERVING"
        )
        assert await suite.readyz() == 503
    await until(lambda: equals(suite.health(), health_pb2.HealthCheckResponse.SERVING), what="SERVING")
    await until(lambda: equals(suite.readyz(), 200), what="ready again")
    back_after = time.monotonic() - killed_at

    assert suite.redis_pid() != old_pid  # a new redis-server, at the same URL
    await _assert_kept(suite, authority, job_id)
    assert suite.stop() == 0
    died, restarted = suite.events("embedded_redis_died"), suite.events("embedded_redis_restarted")
    assert len(died) == 1, died  # and none for the deliberate stop at the end
    assert died[0]["exit_code"] == -signal.SIGKILL
    assert len(restarted) == 1, restarted
    assert restarted[0]["down_seconds"] < back_after
    assert [e["serving"] for e in suite.events("readiness_changed")][:3] == [True, False, True]
