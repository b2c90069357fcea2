"""The compose file's topology without containers: the processes compose.yaml starts, on this machine.

`migrate`, then each suite container of compose.yaml as a `workermon` process with that container's
command and environment (only addresses, the secret and the data directory replaced), each waited for
with the container's own healthcheck; nginx with deploy/compose/nginx.conf (only hosts, ports and nginx's
own file paths rewritten); the gateway. Then, through the router: the gateway's /metrics and API, an SDK
worker beating, a collection; then a heartbeat replica killed (the other takes over) and the incidents
service killed (the gateway says so).

Needs nginx (Debian's nginx-light); without it the test is skipped, unless CI_REQUIRE_NGINX=1 (set by
.ci/run, which installs it), which makes that an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
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

from tests.deploy.conftest import DEPLOY, environment, suite_containers
from tests.support.fakes import TEST_SECRET
from tests.support.processes import PostgresDatabase, RedisProcess, free_port, wait_for
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_sdk.client import HeartbeatClient

pytestmark = pytest.mark.timeout(360)
START_LIMIT_SECONDS = 150.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        message = "nginx is needed for the compose topology test (apt-get install nginx-light)"
        if os.environ.get("CI_REQUIRE_NGINX") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def render_nginx(text: str, ports: dict[str, int], router: int, health: int, directory: Path) -> str:
    """nginx.conf with the containers' names replaced by local ports, and nginx's files in `directory`."""
    for name, port in ports.items():
        text, count = re.subn(rf"server\s+{re.escape(name)}:50051\b", f"server 127.0.0.1:{port}", text)
        assert count <= 1, name
    assert not re.search(r"server\s+[a-z][\w-]*:50051", text), "a server of nginx.conf runs no process here"
    text = text.replace("listen 50051 http2;", f"listen 127.0.0.1:{router} http2;")
    text = text.replace("listen 8081;", f"listen 127.0.0.1:{health};")
    text = re.sub(r"^pid .*;$", f"pid {directory}/nginx.pid;", text, flags=re.M)
    paths = "".join(
        f"    {k}_temp_path {directory}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return text.replace("http {\n", "http {\n" + paths, 1)


@dataclass
class Topology:
    """The processes of compose.yaml, by container name, and where they listen."""

    directory: Path
    redis_url: str
    database_url: str
    router: int = field(default_factory=free_port)
    router_health: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    _files: list[IO[bytes]] = field(default_factory=list)

    @property
    def router_target(self) -> str:
        return f"127.0.0.1:{self.router}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def local_value(self, value: str) -> str:
        """An address of the compose network as this machine has it."""
        if value.startswith("redis://redis:6379"):
            return self.redis_url
        if value.startswith("postgresql+psycopg://workermon:"):
            return self.database_url
        return value.replace("router:50051", self.router_target)

    def local_env(self, name: str, service: dict[str, Any]) -> dict[str, str]:
        """The container's environment with this machine's addresses in place of the compose network's."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("WORKERMON_")}
        for variable in ("REDIS_URL", "DATABASE_URL"):
            base.pop(variable, None)
        env = {variable: self.local_value(value) for variable, value in environment(service).items()}
        env.update(
            WORKERMON_JWT_SECRET=TEST_SECRET,
            WORKERMON_DATA_DIR=str(self.directory / name),
            WORKERMON_GRPC_HOST="127.0.0.1",
            WORKERMON_GRPC_PORT=str(self.ports.setdefault(name, free_port())),
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
        test = compose["services"][name]["healthcheck"]["test"]
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


async def start(topology: Topology, compose: dict[str, Any], nginx: str) -> None:
    """What `docker compose up` does, in its order: migrate, the services, the router, the gateway."""
    containers = suite_containers(compose)
    command = [sys.executable, "-m", "workermon_cli.main"]
    migrate = containers.pop("migrate")
    assert migrate["entrypoint"] == ["workermon", "migrate"]
    await topology.spawn("migrate", [*command, "migrate"], topology.local_env("migrate", migrate))
    assert await topology.processes["migrate"].wait() == 0, topology.tail()
    gateway = containers.pop("gateway")
    for name, service in containers.items():
        await topology.spawn(
            name, [*command, "serve", *service["command"]], topology.local_env(name, service)
        )
    for name in containers:
        await wait_for(lambda n=name: topology.healthy(compose, n), f"{name} healthy", START_LIMIT_SECONDS)
    conf = topology.directory / "nginx.conf"
    source = (DEPLOY / "compose" / "nginx.conf").read_text()
    conf.write_text(
        render_nginx(source, topology.ports, topology.router, topology.router_health, topology.directory)
    )
    await topology.spawn("router", [nginx, "-c", str(conf), "-e", "stderr", "-g", "daemon off;"])

    async def router_up() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient() as client:
                return (
                    await client.get(f"http://127.0.0.1:{topology.router_health}/healthz")
                ).status_code == 200
        return False

    await wait_for(router_up, "the router's /healthz", 20)
    await topology.spawn(
        "gateway", [*command, "serve", *gateway["command"]], topology.local_env("gateway", gateway)
    )
    await wait_for(lambda: topology.healthy(compose, "gateway"), "gateway healthy", START_LIMIT_SECONDS)


@pytest.fixture
async def topology(
    tmp_path: Path, compose: dict[str, Any], postgres_url: str | None
) -> AsyncIterator[Topology]:
    nginx = nginx_binary()
    redis = RedisProcess(tmp_path / "redis")
    await redis.start()
    database = PostgresDatabase(postgres_url) if postgres_url else None
    if database is not None:
        database.create()
    url = database.url if database else f"sqlite+aiosqlite:///{tmp_path / 'wm.db'}"
    running = Topology(tmp_path, redis.url, url)
    try:
        try:
            await start(running, compose, nginx)
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


async def test_the_suite_works_through_the_router_and_survives_a_replica(topology: Topology) -> None:
    authority = TokenAuthority(TEST_SECRET)
    viewer = {"authorization": f"Bearer {authority.mint('topology-viewer', 'viewer')}"}
    http = httpx.AsyncClient(base_url=topology.url, timeout=10, headers=viewer)
    worker = HeartbeatClient(
        topology.router_target,
        authority.mint("topology-worker", "worker"),
        worker_id="topology-worker",
        queues=["emails"],
    )
    emails = Queue("emails", {"connection": topology.redis_url})
    channel = open_channel(topology.router_target, authority.mint("topology-ops", "operator"))
    try:
        # Every service answers the gateway through the router.
        samples = await scrape(http)
        assert {
            s: up(samples, s) for s in ("monitor", "collector", "heartbeat", "incidents")
        } == dict.fromkeys(("monitor", "collector", "heartbeat", "incidents"), 1.0), topology.tail()

        # A worker beats through the router; jobs wait; a collection runs through it.
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

        # /readyz asks grpc.health.v1 per service, which the router cannot route (docs/deploy-compose.md):
        # when this changes, the gateway's healthcheck in compose.yaml can become /readyz.
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and set(ready.json()["services"].values()) == {"UNREACHABLE"}

        # One heartbeat replica gone: the other answers every call.
        await topology.kill("heartbeat-1")
        started = time.monotonic()
        for _ in range(6):
            assert (await http.get("/api/v1/workers")).status_code == 200
            assert up(await scrape(http), "heartbeat") == 1.0
        assert time.monotonic() - started < 20

        # The only incidents process gone: the gateway says so at once, and still answers the rest.
        await topology.kill("incidents")
        samples = await scrape(http)
        assert up(samples, "incidents") == 0.0 and up(samples, "monitor") == 1.0
    finally:
        await worker.stop()
        await emails.close()
        await channel.close()
        await http.aclose()
