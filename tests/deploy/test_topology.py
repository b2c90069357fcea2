"""The compose file's topology without containers: the processes compose.yaml starts, on this machine.

`migrate`, then each service of compose.yaml as `workermon` processes, as many as its replicas, with that
service's command and environment (only addresses, the secret and the data directory replaced: a
`dns:///<service>:50051` target, which Compose's DNS resolves to every replica, becomes the list of
those replicas' local addresses), each waited for with the service's own healthcheck, as `depends_on`
does; the gateway last. Then: the gateway's /readyz and /metrics with every service behind it, its API,
an SDK worker beating to the heartbeat replicas, a collection; a heartbeat replica killed (the other
answers every call); the incidents service killed (the gateway says so).
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from bullmq import Queue
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import environment, replicas, suite_containers
from tests.support.fakes import TEST_SECRET
from tests.support.processes import PostgresDatabase, RedisProcess, free_port, hermetic_env, wait_for
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_sdk.client import HeartbeatClient

pytestmark = pytest.mark.timeout(360)
START_LIMIT_SECONDS = 150.0


@dataclass
class Topology:
    """The processes of compose.yaml by container name (`heartbeat-1`, `monitor-1`...), and their ports."""

    directory: Path
    redis_url: str
    database_url: str
    http: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _files: list[IO[bytes]] = field(default_factory=list)

    def addresses(self, service: str) -> str:
        """What Compose's DNS gives for a service name here: its replicas' addresses, as a list."""
        return ",".join(
            f"127.0.0.1:{port}" for name, port in self.ports.items() if name.rsplit("-", 1)[0] == service
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def local_value(self, value: str) -> str:
        """An address of the compose network as this machine has it."""
        if value.startswith("redis://redis:6379"):
            return self.redis_url
        if value.startswith("postgresql+psycopg://workermon:"):
            return self.database_url
        found = re.fullmatch(r"dns:///([\w-]+):50051", value)
        return self.addresses(found[1]) if found else value

    def local_env(self, name: str, service: dict[str, Any]) -> dict[str, str]:
        """The environment of container `name` (`<service>-<n>`) of `service`, with this machine's
        addresses in place of the compose network's."""
        base = hermetic_env()
        env = {variable: self.local_value(value) for variable, value in environment(service).items()}
        env.update(
            WORKERMON_JWT_SECRET=TEST_SECRET,
            WORKERMON_DATA_DIR=str(self.directory / name),
            WORKERMON_GRPC_HOST="127.0.0.1",
            WORKERMON_GRPC_PORT=str(self.ports.get(name) or free_port()),
            WORKERMON_LOG_FORMAT="json",
        )
        if "WORKERMON_HTTP_PORT" in env:
            env.update(WORKERMON_HTTP_HOST="127.0.0.1", WORKERMON_HTTP_PORT=str(self.http))
            env["WORKERMON_USERS_FILE"] = str(self.directory / "users.json")
        return {**base, **env}

    async def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.logs[name] = self.directory / f"{name}.log"
        log = self.logs[name].open("wb")
        self._files.append(log)
        self.processes[name] = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )

    async def healthy(self, compose: dict[str, Any], name: str) -> bool:
        """The container's own healthcheck, pointed at this process's port (an exited process fails)."""
        exited = self.processes[name].returncode
        assert exited is None, f"{name} exited with {exited}:\n{self.tail()}"
        test = compose["services"][name.rsplit("-", 1)[0]]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        code = str(test[3]).replace("127.0.0.1:50051", f"127.0.0.1:{self.ports[name]}")
        code = code.replace("127.0.0.1:8080", f"127.0.0.1:{self.http}")
        check = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        return await check.wait() == 0

    def tail(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for name, path in self.logs.items()
        )

    async def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def stop(self) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.terminate()
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        for log in self._files:
            log.close()


async def start(topology: Topology, compose: dict[str, Any]) -> None:
    """What `docker compose up` does, in its order: migrate, the services, the gateway."""
    containers = suite_containers(compose)
    command = [sys.executable, "-m", "workermon_cli.main"]
    migrate, gateway = containers.pop("migrate"), containers.pop("gateway")
    names = {f"{svc}-{n}": svc for svc, spec in containers.items() for n in range(1, replicas(spec) + 1)}
    for name in [*names, "gateway-1"]:
        topology.ports[name] = free_port()  # every address first: each process's peers are all of them
    assert migrate["entrypoint"] == ["workermon", "migrate"]
    await topology.spawn("migrate", [*command, "migrate"], topology.local_env("migrate", migrate))
    assert await topology.processes["migrate"].wait() == 0, topology.tail()
    for name, service in names.items():
        args = [*command, "serve", *containers[service]["command"]]
        await topology.spawn(name, args, topology.local_env(name, containers[service]))
    for name in names:
        await wait_for(lambda n=name: topology.healthy(compose, n), f"{name} healthy", START_LIMIT_SECONDS)
    await topology.spawn(
        "gateway-1", [*command, "serve", *gateway["command"]], topology.local_env("gateway-1", gateway)
    )
    await wait_for(lambda: topology.healthy(compose, "gateway-1"), "gateway healthy", START_LIMIT_SECONDS)


@pytest.fixture
async def topology(
    tmp_path: Path, compose: dict[str, Any], postgres_url: str | None
) -> AsyncIterator[Topology]:
    redis = RedisProcess(tmp_path / "redis")
    await redis.start()
    database = PostgresDatabase(postgres_url) if postgres_url else None
    if database is not None:
        database.create()
    url = database.url if database else f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}"
    running = Topology(tmp_path, redis.url, url)
    try:
        try:
            await start(running, compose)
        except BaseException:
            print(running.tail(40))
            raise
        yield running
    finally:
        await running.stop()
        await redis.stop()
        if database is not None:
            database.drop()


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    reply = await client.get("/metrics")
    assert reply.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def up(samples: Samples, service: str) -> float | None:
    return samples.get(("workermon_upstream_up", frozenset({("service", service)})))


async def test_the_suite_works_as_composed_and_survives_a_replica(topology: Topology) -> None:
    authority = TokenAuthority(TEST_SECRET)
    viewer = {"authorization": f"Bearer {authority.mint('topology-viewer', 'viewer')}"}
    http = httpx.AsyncClient(base_url=topology.url, timeout=10, headers=viewer)
    worker = HeartbeatClient(
        "ipv4:" + topology.addresses("heartbeat"),
        authority.mint("topology-worker", "worker", worker="topology-worker"),
        worker_id="topology-worker",
        queues=["emails"],
    )
    emails = Queue("emails", {"connection": topology.redis_url})
    channel = open_channel(topology.addresses("collector"), authority.mint("topology-ops", "operator"))
    try:
        # The gateway reaches every service at that service's own target.
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        samples = await scrape(http)
        assert {
            s: up(samples, s) for s in ("monitor", "collector", "heartbeat", "incidents")
        } == dict.fromkeys(("monitor", "collector", "heartbeat", "incidents"), 1.0), topology.tail()

        # A worker beats to the heartbeat replicas; jobs wait; a collection runs on a collector replica.
        for i in range(4):
            await emails.add("mail", {"i": i})
        await worker.start()
        await col_grpc.CollectorServiceStub(channel).CollectNow(col_pb.CollectNowRequest(), timeout=10)

        async def seen() -> bool:
            now = await scrape(http)
            return (
                now.get(("workermon_workers_online", frozenset())) == 1
                and now.get(("workermon_queue_workers_online", frozenset({("queue", "emails")}))) == 1
                and now.get(("workermon_queue_jobs", frozenset({("queue", "emails"), ("state", "waiting")})))
                == 4
                and ("workermon_queue_completed_total", frozenset({("queue", "emails")})) in now
            )

        await wait_for(seen, "the worker, the waiting jobs and the collection in /metrics", 30)
        workers = await http.get("/api/v1/workers")
        listed = [w["report"]["workerId"] for w in workers.json()["workers"]]
        assert listed == ["topology-worker"], workers.text

        # One heartbeat replica gone: the other answers every call.
        await topology.kill("heartbeat-1")
        started = time.monotonic()
        for _ in range(6):
            assert (await http.get("/api/v1/workers")).status_code == 200
            assert up(await scrape(http), "heartbeat") == 1.0
        assert (await http.get("/readyz")).status_code == 200
        assert time.monotonic() - started < 20

        # The only incidents process gone: the gateway says so at once, and still answers the rest.
        await topology.kill("incidents-1")
        samples = await scrape(http)
        assert up(samples, "incidents") == 0.0 and up(samples, "monitor") == 1.0
        assert (await http.get("/readyz")).status_code == 503
    finally:
        await worker.stop()
        await emails.close()
        await channel.close()
        await http.aclose()
