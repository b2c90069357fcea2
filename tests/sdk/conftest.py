"""Fixtures for the SDK tests: a real Redis for bullmq, and a heartbeat target nothing listens on."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from bullmq import Queue

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def closed_target() -> str:
    """host:port with no server behind it, as when the heartbeat service is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
async def queue() -> AsyncIterator[Queue]:
    q = Queue(f"workermon-sdk-test-{uuid.uuid4().hex}", {"connection": REDIS_URL})
    try:
        yield q
    finally:
        await q.obliterate(force=True)
        await q.close()


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, message: str = "") -> None:
    """Poll ``predicate`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {message or predicate}")
        await asyncio.sleep(0.02)
