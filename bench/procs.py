"""The processes of a benchmark run (server, load generators, Redis) and the counters read from them."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import IO, Any

import psutil
import redis

from workermon_core.redis_store import EmbeddedRedis

from . import client

ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A benchmark process failed; the message says which and why."""


# --- server ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU seconds (user + system, all threads) and resident memory of one process."""

    cpu_s: float
    rss: int


class ServerProcess:
    """`python -m bench.server KIND ...` in its own process, so its CPU time is its own."""

    def __init__(
        self,
        kind: str,
        args: list[str],
        env: dict[str, str],
        log_path: Path,
        command: list[str] | None = None,
        *,
        announces: bool = True,
    ) -> None:
        """`command` replaces `python -m bench.server KIND` for a server of another kind (a Node
        baseline) that prints `PORT <n>` the same way; one that does not (`announces=False`, e.g.
        `workermon serve` on ports chosen beforehand) gets no stdout pipe, which nobody would drain."""
        self.kind = kind
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "bench.server", kind]), *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE if announces else subprocess.DEVNULL,
            stderr=self._log,
        )
        self.port = 0
        # Further ports the server prints after the first (`PORT <grpc> <http>`).
        self.more_ports: list[int] = []
        self.ps = psutil.Process(self.proc.pid)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Block until the server prints its port."""
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise BenchError(f"{self.kind} server did not start within {timeout:.0f}s; {self.tail()}")
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("PORT "):
            raise BenchError(f"{self.kind} server failed to start; {self.tail()}")
        ports = [int(word) for word in line.split()[1:]]
        self.port, self.more_ports = ports[0], ports[1:]

    def sample(self) -> ProcSample:
        times = self.ps.cpu_times()
        return ProcSample(cpu_s=times.user + times.system, rss=self.ps.memory_info().rss)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"{self.kind} server exited with {self.proc.returncode}; {self.tail()}")

    def tail(self) -> str:
        """The end of the server's log, for a failure message."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")[-3000:]
        return f"server log {self.log_path}:\n{text}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# --- load generators ---------------------------------------------------------------------------------


class ClientProcess:
    """A load-generator process (bench.client.serve) driven over a pipe."""

    def __init__(self, ctx: SpawnContext) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=client.serve, args=(child,), daemon=True, name="bench-client")
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        return int(self.proc.pid or 0)

    def send(self, message: object) -> None:
        self.conn.send(message)

    def receive(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise BenchError(f"load generator {self.pid} did not answer within {timeout:.0f}s")
        try:
            message = self.conn.recv()
        except (EOFError, ConnectionResetError):
            self.proc.join(5)
            raise BenchError(f"load generator {self.pid} exited with {self.proc.exitcode}") from None
        if isinstance(message, client.Failed):
            raise BenchError(f"load generator {self.pid} failed:\n{message.trace}")
        return message

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(OSError):  # it may be gone already
                self.conn.send(None)
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        self.conn.close()


# --- Redis and the machine ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RedisSample:
    """EVALSHA calls and microseconds (INFO commandstats) and Redis CPU seconds (INFO cpu)."""

    evalsha_calls: int
    evalsha_usec: int
    cpu_s: float


def redis_sample(client_: redis.Redis) -> RedisSample:
    stats: dict[str, Any] = client_.info("commandstats")
    cpu: dict[str, Any] = client_.info("cpu")
    evalsha = stats.get("cmdstat_evalsha", {})
    return RedisSample(
        evalsha_calls=int(evalsha.get("calls", 0)),
        evalsha_usec=int(evalsha.get("usec", 0)),
        cpu_s=float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    )


@dataclass(frozen=True, slots=True)
class MachineSample:
    """Busy, stolen (by the hypervisor) and total CPU seconds over all cores."""

    busy_s: float
    steal_s: float
    total_s: float


def machine_sample() -> MachineSample:
    times = psutil.cpu_times()
    # guest time is already inside user time
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    steal = getattr(times, "steal", 0.0)
    return MachineSample(busy_s=total - idle - steal, steal_s=steal, total_s=total)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything sampled at one instant; `servers` holds one sample per server process measured."""

    at: float
    servers: tuple[ProcSample, ...]
    redis: RedisSample
    machine: MachineSample

    @property
    def server(self) -> ProcSample:
        """The server processes together: CPU seconds and RSS summed."""
        return ProcSample(cpu_s=sum(s.cpu_s for s in self.servers), rss=sum(s.rss for s in self.servers))


def snapshot(servers: Sequence[ServerProcess], redis_client: redis.Redis) -> Snapshot:
    return Snapshot(
        at=time.perf_counter(),
        servers=tuple(server.sample() for server in servers),
        redis=redis_sample(redis_client),
        machine=machine_sample(),
    )


def start_redis(directory: Path, stack: ExitStack) -> tuple[str, str]:
    """REDIS_URL when set, else an embedded Redis in `directory` stopped with `stack`: (URL, kind)."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        return configured, "REDIS_URL"
    embedded = EmbeddedRedis(directory)
    url = embedded.start()
    stack.callback(embedded.stop)
    # Our own throw-away instance: no RDB snapshot (a fork) in the middle of a measurement.
    with redis.Redis.from_url(url) as admin:
        admin.config_set("save", "")
    return url, "embedded"


def delete_keys(redis_client: redis.Redis, prefix: str) -> int:
    """Remove every key of a run from a shared Redis (all of them share the run's hash tag)."""
    return delete_matching(redis_client, "{" + prefix + "}*")


def delete_matching(redis_client: redis.Redis, match: str) -> int:
    """SCAN + UNLINK, in batches, every key matching a glob pattern."""
    deleted = 0
    batch: list[bytes] = []
    for key in redis_client.scan_iter(match=match, count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            deleted += int(redis_client.unlink(*batch))
            batch.clear()
    if batch:
        deleted += int(redis_client.unlink(*batch))
    return deleted
