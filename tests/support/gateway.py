"""Gateway fixtures: the real suite (every service, SQLite, the test Redis) with the HTTP gateway beside it
on a free port, reached with httpx over real HTTP; BullMQ queues under the suite's own queue prefix.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from bullmq import Job, Queue, Worker

from tests.support.bull import delete_prefix, delete_suite_keys, until
from tests.support.fakes import TEST_SECRET
from tests.support.suites import Config, start_config
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_cli.runtime import Suite
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.redis_store import connect


@dataclass
class Gateway:
    """The running suite and gateway, with helpers to call it as each role."""

    suite: Suite
    settings: Config
    redis_url: str
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>."""
        assert self.suite.http_url is not None
        return self.suite.http_url

    @property
    def api(self) -> str:
        """The API's base URL (with the base path)."""
        return self.url + self.settings.base_path

    @property
    def authority(self) -> TokenAuthority:
        return self.suite.authority

    def token(self, role: str, subject: str | None = None) -> str:
        # A worker token speaks for its own worker id only.
        who = subject or f"{role}-user"
        return self.authority.mint(who, role, worker=who if role == "worker" else None)

    def client(self, role: str | None = None, subject: str | None = None) -> httpx.AsyncClient:
        """An httpx client on the gateway, with a bearer token for `role` (none when None)."""
        headers = {"authorization": f"Bearer {self.token(role, subject)}"} if role else {}
        client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30.0)
        self.clients.append(client)
        return client

    def queue(self, name: str) -> Queue:
        """A BullMQ queue the suite watches (the suite's queue prefix)."""
        queue = Queue(name, {"connection": self.redis_url, "prefix": self.settings.queue_prefix})
        self.queues.append(queue)
        return queue

    def worker(self, name: str, processor: Callable[..., Awaitable[Any]]) -> Worker:
        return Worker(name, processor, {"connection": self.redis_url, "prefix": self.settings.queue_prefix})

    async def beat(self, worker_id: str, queues: list[str]) -> None:
        """Register an instrumented worker with one Beat, as the SDK would."""
        channel = open_channel(self.suite.grpc_target, self.token("worker", worker_id))
        self.channels.append(channel)
        report = hb_pb.WorkerReport(
            worker_id=worker_id,
            instance_id=uuid.uuid4().hex,
            hostname="gw-test-host",
            pid=4242,
            queues=queues,
            concurrency=2,
            state=hb_pb.WORKER_STATE_RUNNING,
        )
        await hb_grpc.HeartbeatServiceStub(channel).Beat(hb_pb.BeatRequest(report=report))

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for queue in self.queues:
            await queue.close()
        for channel in self.channels:
            await channel.close()


def gateway_settings(tmp: Path, redis_url: str, **overrides: Any) -> Config:
    """Settings for a private suite: port 0 for gRPC and HTTP, own prefixes, SQLite in `tmp`."""
    values: dict[str, Any] = {
        "data_dir": tmp / "data",
        "grpc_port": 0,
        "http_port": 0,
        "redis_url": redis_url,
        "database_url": f"sqlite+aiosqlite:///{tmp / 'wm.db'}",
        "redis_prefix": "wmgw-" + uuid.uuid4().hex[:10],
        "queue_prefix": "wmgwq-" + uuid.uuid4().hex[:10],
        "jwt_secret": TEST_SECRET,
        "collector_schedule": False,
        "live_max_age_seconds": 0,
        "readiness_interval_seconds": 0.2,
        "shutdown_grace_seconds": 1.0,
        "beat_interval_seconds": 5,
    }
    values.update(overrides)
    return Config(**values)


async def wait_ready(url: str, limit: float = 20.0) -> None:
    """Poll /readyz until every service is SERVING."""
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(base_url=url) as client:
        while True:
            reply = await client.get("/readyz")
            if reply.status_code == 200:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway not ready within {limit}s: {reply.text}")
            await asyncio.sleep(0.1)


async def start_gateway_suite(tmp: Path, redis_url: str, **overrides: Any) -> Gateway:
    """Migrate, start every service and the gateway, and wait until it is ready."""
    settings = gateway_settings(tmp, redis_url, **overrides)
    suite = await start_config(settings)
    gateway = Gateway(suite=suite, settings=settings, redis_url=redis_url)
    await wait_ready(gateway.url)
    return gateway


async def stop_gateway_suite(gateway: Gateway) -> None:
    await gateway.close()
    await gateway.suite.stop()
    client = connect(gateway.redis_url)
    try:
        await delete_prefix(client, gateway.settings.queue_prefix)
        await delete_suite_keys(client, gateway.settings.redis_prefix)
    finally:
        await client.aclose()


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """`workermon` run in-process (main()) would point logging at this test's captured stderr, which is
    closed by the next test: the module-wide suite would then fail on its first log line.
    """
    monkeypatch.setattr("workermon_cli.main.configure_logging", lambda *args, **kwargs: None)


@pytest.fixture(scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> AsyncIterator[Gateway]:
    """One suite and gateway per test module (starting them takes about a second)."""
    running = await start_gateway_suite(tmp_path_factory.mktemp("gateway"), redis_url)
    yield running
    await stop_gateway_suite(running)


async def fail_some(gateway: Gateway, queue: Queue, completed: int, failed: int) -> None:
    """Run a BullMQ worker until `completed` jobs completed and `failed` failed for good."""

    async def process(job: Job, token: str) -> Any:
        if job.data.get("fail"):
            raise RuntimeError("connect ECONNREFUSED 10.0.0.1:5432")
        return {"ok": True}

    for i in range(completed):
        await queue.add("ok", {"i": i})
    for i in range(failed):
        await queue.add("bad", {"i": i, "fail": True})
    worker = gateway.worker(queue.name, process)

    async def reached() -> bool:
        counts = await queue.getJobCounts("completed", "failed")
        return bool(counts["completed"] >= completed and counts["failed"] >= failed)

    try:
        await until(reached, what=f"{completed} completed / {failed} failed")
    finally:
        await worker.close()
