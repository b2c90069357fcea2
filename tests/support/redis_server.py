"""Helpers of the embedded-Redis fault tests: data to find again after a fault, when the AOF holds every
write, which redis-server answers on a URL, a program taking a port, the start lock held."""

from __future__ import annotations

import contextlib
import fcntl
import socket
from collections.abc import Iterator
from pathlib import Path

import redis
from bullmq import Queue
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support.processes import wait_for

JOB_DATA = {"to": "ops@example.com"}
HASH_KEY = "{wmtest}:worker:w-1"
STREAM_KEY = "{wmtest}:events"


async def write_state(url: str) -> str:
    """A BullMQ job (its hash, the wait list, the id counter, the events stream), and a hash and a stream
    like the suite's own, under keys of their own; returns the job's id."""
    queue = Queue("emails", {"connection": url})
    try:
        job = await queue.add("send", JOB_DATA)
    finally:
        await queue.close()
    with redis.Redis.from_url(url) as client:
        client.hset(HASH_KEY, mapping={"status": "online", "queues": "emails"})
        client.xadd(STREAM_KEY, {"kind": "beat"})
    return str(job.id)


async def assert_state(url: str, job_id: str) -> None:
    """What `write_state` wrote is all there."""
    queue = Queue("emails", {"connection": url})
    try:
        job = await queue.getJob(job_id)
        assert job is not None
        assert job.data == JOB_DATA
        assert await queue.getJobCounts("waiting") == {"waiting": 1}
    finally:
        await queue.close()
    with redis.Redis.from_url(url, decode_responses=True) as client:
        assert client.hgetall(HASH_KEY) == {"status": "online", "queues": "emails"}
        assert client.xlen(STREAM_KEY) == 1


def _probe(url: str) -> redis.Redis:
    """A client that fails at once when nothing answers (redis-py's default retries for seconds)."""
    return redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=1.0)


async def aof_written(url: str) -> None:
    """Wait until every write so far is in the append-only file.

    Redis hands its AOF buffer to the kernel (write(2)) before it goes back to sleep; an empty buffer
    means the file has every write, and killing redis-server cannot take back what the kernel holds.
    (The once-a-second fsync matters only to a power loss, which no test makes.)
    """
    with _probe(url) as client:
        await wait_for(lambda: int(client.info("persistence")["aof_buffer_length"]) == 0, "AOF written", 20)


def server_pid(url: str) -> int | None:
    """The process id of the redis-server answering at `url`, None when nothing answers."""
    try:
        with _probe(url) as client:
            return int(client.info("server")["process_id"])
    except redis.ConnectionError:
        return None


def listen_on(port: int) -> socket.socket:
    """Another program taking a loopback port (close it to give the port back)."""
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    return squatter


@contextlib.contextmanager
def start_lock(redis_dir: Path) -> Iterator[None]:
    """Hold the embedded Redis's start lock, as a process starting it would: a restart waits meanwhile."""
    with (redis_dir / "redis.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
