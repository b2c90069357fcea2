"""A Redis that answers LOADING (back from a restart, replaying its append-only file) makes the board
say UNAVAILABLE, never that a queue does not exist: the truth cannot be read yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from redis.exceptions import BusyLoadingError

from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.errors import translate
from workermon_core.peer import Peer
from workermon_core.redis_store import connect
from workermon_monitor.board import Board
from workermon_queues.bullmq import BullMQBackend

LOADING = b"-LOADING Redis is loading the dataset in memory\r\n"
# What a client sends on connecting is answered; every data command is refused as while loading.
_HANDSHAKE = {b"CLIENT", b"SELECT", b"AUTH", b"HELLO"}


async def _command(reader: asyncio.StreamReader) -> list[bytes] | None:
    """One RESP command (an array of bulk strings), None at the end of the stream."""
    header = await reader.readline()
    if not header:
        return None
    parts: list[bytes] = []
    for _ in range(int(header[1:])):
        length = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(length + 2))[:-2])
    return parts


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while (command := await _command(reader)) is not None:
            writer.write(b"+OK\r\n" if command[0].upper() in _HANDSHAKE else LOADING)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def loading_redis_url() -> AsyncIterator[str]:
    """redis:// URL of a server that answers every data command with LOADING."""
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_queue_is_unavailable_not_missing_while_redis_loads(loading_redis_url: str) -> None:
    redis = connect(loading_redis_url)
    # Peers nobody serves: the board reads Redis first, and without them still has live counts.
    heartbeat = Peer("127.0.0.1:1", hb_grpc.HeartbeatServiceStub, lambda: "token")
    collector = Peer("127.0.0.1:1", col_grpc.CollectorServiceStub, lambda: "token")
    board = Board(BullMQBackend(redis, "bull", ["emails"]), heartbeat, collector)
    try:
        for read in (board.queue("emails"), board.reading()):
            with pytest.raises(Exception) as raised:
                await read
            assert isinstance(raised.value, BusyLoadingError), raised.value  # Redis was reached and refused
            error = translate(raised.value)
            assert error is not None and error.code is grpc.StatusCode.UNAVAILABLE, raised.value
    finally:
        await heartbeat.close()
        await collector.close()
        await redis.aclose()
