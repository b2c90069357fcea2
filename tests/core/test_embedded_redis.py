"""The embedded Redis keeps its data and its port, and its supervisor brings it back when it dies.

Real redis-server processes in a temporary data directory; a killed server is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from tests.support.processes import wait_for
from tests.support.redis_server import (
    aof_written,
    assert_state,
    listen_on,
    server_pid,
    start_lock,
    write_state,
)
from workermon_core.redis_store import EmbeddedRedis
from workermon_core.redis_supervisor import RedisSupervisor


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    embedded = EmbeddedRedis(tmp_path / "data")
    embedded.start()
    yield embedded
    embedded.stop()


def _client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def kill_server(server: EmbeddedRedis) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGKILL)


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def test_persistence_is_on(server: EmbeddedRedis) -> None:
    with _client(server) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        # Each save point really applies (one argv word each; "60 1" as one word kept none).
        assert client.config_get("save") == {"save": "3600 1 300 100 60 10000"}
        assert client.info("persistence")["aof_enabled"] == 1
    assert (server.dir / "appendonly.aof").exists()


async def test_stop_and_start_keep_the_port_and_the_data(server: EmbeddedRedis) -> None:
    job_id = await write_state(server.url)
    port = server.port
    server.stop()
    assert server.port_file.read_text() == str(port)  # kept: the next start listens there again
    assert server.start() == f"redis://127.0.0.1:{port}/0"
    await assert_state(server.url, job_id)


async def test_a_killed_redis_server_loses_no_acknowledged_write(server: EmbeddedRedis) -> None:
    job_id = await write_state(server.url)
    await aof_written(server.url)
    assert not (server.dir / "dump.rdb").exists()  # no snapshot yet: only the AOF can bring it back
    port = server.port
    assert server.process is not None
    kill_server(server)
    assert server.process.wait() == -signal.SIGKILL
    server.start()
    assert server.port == port
    await assert_state(server.url, job_id)


async def test_a_recorded_port_another_program_took_is_given_up_and_the_new_one_recorded(
    server: EmbeddedRedis,
) -> None:
    job_id = await write_state(server.url)
    old = server.port
    server.stop()
    with listen_on(old):
        server.start()
    assert server.port != old
    assert server.port_file.read_text() == str(server.port)
    await assert_state(server.url, job_id)


def test_a_process_reusing_the_server_neither_stops_it_nor_forgets_its_port(server: EmbeddedRedis) -> None:
    other = EmbeddedRedis(server.dir.parent)
    assert other.start() == server.url
    assert other.process is None
    assert other.alive()
    other.stop()
    assert server.alive()
    assert server.port_file.read_text() == str(server.port)
    with _client(server) as client:
        assert client.ping()


async def test_a_restored_dump_without_an_aof_is_loaded_then_kept_in_a_new_aof(server: EmbeddedRedis) -> None:
    job_id = await write_state(server.url)
    server.stop()  # a clean stop writes dump.rdb
    (server.dir / "appendonly.aof").unlink()  # what is left: a backup's dump.rdb alone
    server.start()
    with _client(server) as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
    await assert_state(server.url, job_id)
    # From now on the AOF has it: without the dump, after a SIGKILL.
    await aof_written(server.url)
    (server.dir / "dump.rdb").unlink()
    kill_server(server)
    server.start()
    await assert_state(server.url, job_id)


async def test_supervisor_brings_a_killed_server_back_on_its_port_with_one_log_line_each_way(
    server: EmbeddedRedis,
) -> None:
    job_id = await write_state(server.url)
    await aof_written(server.url)
    port = server.port
    supervisor = RedisSupervisor(server, interval=0.05)
    supervisor.start()
    try:
        with capture_logs() as logs:
            # While the test holds the start lock (as a process starting the server would), the
            # supervisor waits; by the time it may go on, another program has taken the port.
            with start_lock(server.dir):
                kill_server(server)
                await wait_for(lambda: server_pid(server.url) is None, "port released", 10)
                squatter = listen_on(port)
            with squatter:
                await wait_for(
                    lambda: len(events(logs, "embedded_redis_restart_failed")) >= 2, "two failed attempts", 20
                )
            await wait_for(lambda: supervisor.restarts == 1, "restarted", 20)
        assert server.port == port  # never moved: the clients' URL still holds
        assert server.alive()
        await assert_state(server.url, job_id)
        died, back = events(logs, "embedded_redis_died"), events(logs, "embedded_redis_restarted")
        assert len(died) == 1
        assert died[0]["exit_code"] == -signal.SIGKILL
        assert len(back) == 1
        assert back[0]["attempts"] >= 3
        assert back[0]["port"] == port
    finally:
        await supervisor.stop()


async def test_a_process_that_reused_the_server_starts_it_when_its_first_owner_stopped_it(
    server: EmbeddedRedis,
) -> None:
    job_id = await write_state(server.url)
    other = EmbeddedRedis(server.dir.parent)
    other.start()
    supervisor = RedisSupervisor(other, interval=0.05)
    supervisor.start()
    try:
        server.stop()  # the owner goes away; the other user must not be left without Redis
        await wait_for(lambda: supervisor.restarts == 1, "restarted", 20)
        assert other.process is not None  # started here now, and stopped by this user
        assert other.url == server.url
        await assert_state(other.url, job_id)
    finally:
        await supervisor.stop()
        other.stop()
