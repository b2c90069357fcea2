"""`workermon serve --target all` on its embedded Redis, as real processes in a temporary data directory:
its redis-server (and the suite itself) killed with SIGKILL, the worker registry and the BullMQ jobs are
still there, on the same port; readiness follows the outage and recovers on its own."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.heartbeat import report
from tests.support.processes import SuiteProcess, running, wait_for
from tests.support.redis_server import aof_written, assert_state, server_pid, start_lock, write_state
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel

pytestmark = pytest.mark.slow

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def events(suite: SuiteProcess, name: str) -> list[dict[str, Any]]:
    """The suite's JSON log lines of one event, oldest first."""
    found = []
    for _, line in suite.lines:
        if line.startswith("{") and (entry := json.loads(line)).get("event") == name:
            found.append(entry)
    return found


def redis_url(suite: SuiteProcess) -> str:
    """The embedded Redis's URL, from the `serving` line."""
    return str(events(suite, "serving")[0]["redis"])


def redis_pid(suite: SuiteProcess) -> int:
    pid = server_pid(redis_url(suite))
    assert pid is not None, f"nothing answers at {redis_url(suite)}"
    return pid


async def health(suite: SuiteProcess) -> int:
    """The gRPC health of the whole server."""
    async with grpc.aio.insecure_channel(suite.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int((await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)).status)


async def readyz(suite: SuiteProcess) -> int:
    """The gateway's /readyz status code (0: no answer yet)."""
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            return (await client.get(suite.http_url + "/readyz")).status_code
        except httpx.TransportError:
            return 0


@contextlib.asynccontextmanager
async def started(data_dir: Path) -> AsyncIterator[SuiteProcess]:
    """A suite on the embedded defaults (no REDIS_URL, no DATABASE_URL) in `data_dir`, migrated and
    ready; stopped at the end."""
    suite = SuiteProcess(
        env={"WORKERMON_DATA_DIR": str(data_dir), "WORKERMON_READINESS_INTERVAL_SECONDS": "0.2"}
    )
    await suite.migrate()

    async def is_ready() -> bool:
        assert suite.process is not None and suite.process.returncode is None, suite.lines[-20:]
        return await readyz(suite) == 200

    async with running(suite):
        await wait_for(is_ready, "suite ready", 60)
        yield suite


async def fill(suite: SuiteProcess, authority: TokenAuthority) -> str:
    """A worker in the registry (through HeartbeatService) and a BullMQ job and keys; all in the AOF."""
    async with open_channel(suite.grpc_target, authority.mint("w-1", "worker", worker="w-1")) as channel:
        await pb_grpc.HeartbeatServiceStub(channel).Beat(pb.BeatRequest(report=report("w-1")))
    job_id = await write_state(redis_url(suite))
    await aof_written(redis_url(suite))
    return job_id


async def assert_kept(suite: SuiteProcess, authority: TokenAuthority, job_id: str) -> None:
    async with open_channel(suite.grpc_target, authority.mint("test-viewer", "viewer")) as channel:
        reply = await pb_grpc.HeartbeatServiceStub(channel).GetWorker(pb.GetWorkerRequest(worker_id="w-1"))
    assert reply.worker.report.worker_id == "w-1"
    await assert_state(redis_url(suite), job_id)


async def test_suite_and_its_redis_killed_then_started_again_keep_registry_jobs_and_port(
    tmp_path: Path, authority: TokenAuthority
) -> None:
    async with started(tmp_path / "data") as first:
        job_id = await fill(first, authority)
        url = redis_url(first)
        # Both killed outright: the redis-server first (no final save), then the suite.
        os.kill(redis_pid(first), signal.SIGKILL)
        await first.stop(signal.SIGKILL)
    await wait_for(lambda: server_pid(url) is None, "redis-server gone", 10)

    async with started(tmp_path / "data") as second:
        assert redis_url(second) == url  # the recorded port
        await assert_kept(second, authority, job_id)


async def test_killed_redis_server_comes_back_under_a_running_suite(
    tmp_path: Path, authority: TokenAuthority
) -> None:
    async with started(tmp_path / "data") as suite:
        job_id = await fill(suite, authority)
        old_pid = redis_pid(suite)

        # Holding the start lock (as another process starting the server would) keeps the outage long
        # enough for readiness to see it, whatever the machine's speed; the supervisor waits for it.
        with start_lock(tmp_path / "data" / "redis"):
            killed_at = time.monotonic()
            os.kill(old_pid, signal.SIGKILL)
            await wait_for(lambda: _is(health(suite), NOT_SERVING), "NOT_SERVING", 15)
            assert await readyz(suite) == 503
        await wait_for(lambda: _is(health(suite), SERVING), "SERVING again", 15)
        await wait_for(lambda: _is(readyz(suite), 200), "ready again", 15)
        back_after = time.monotonic() - killed_at

        assert redis_pid(suite) != old_pid  # a new redis-server, at the same URL
        await assert_kept(suite, authority, job_id)
    assert suite.process is not None and suite.process.returncode == 0
    died, restarted = events(suite, "embedded_redis_died"), events(suite, "embedded_redis_restarted")
    assert len(died) == 1, died  # and none for the deliberate stop at the end
    assert died[0]["exit_code"] == -signal.SIGKILL
    assert len(restarted) == 1, restarted
    assert restarted[0]["down_seconds"] < back_after
    assert [e["serving"] for e in events(suite, "readiness_changed")][:3] == [True, False, True]


async def _is(value: Any, expected: object) -> bool:
    return bool(await value == expected)
