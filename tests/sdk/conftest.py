"""Fixtures for the SDK tests: a real Redis for bullmq, and a heartbeat target nothing listens on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from bullmq import Queue

LOCAL_REDIS = "redis://127.0.0.1:6379"


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def sdk_redis_url(request: pytest.FixtureRequest) -> str:
    """REDIS_URL, else the machine's Redis, else the suite's embedded one (the root ``redis_url``)."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        return configured
    if _answers("127.0.0.1", 6379):
        return LOCAL_REDIS
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def closed_target() -> str:
    """host:port with no server behind it, as when the heartbeat service is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
async def queue(sdk_redis_url: str) -> AsyncIterator[Queue]:
    q = Queue(f"workermon-sdk-test-{uuid.uuid4().hex}", {"connection": sdk_redis_url})
    try:
        yield q
    finally:
        # obliterate refuses while a lock is still held, and a closing worker may write the queue's meta
        # key after it: whatever is left under the queue's prefix goes too, so no test leaves data behind.
        with contextlib.suppress(Exception):
            await q.obliterate(force=True)
        await q.close()
        client = aioredis.Redis.from_url(sdk_redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"bull:{q.name}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


WaitUntil = Callable[..., Awaitable[None]]


async def _wait_until(predicate: Callable[[], bool], within: float = 10.0, message: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {message or predicate}")
        await asyncio.sleep(0.02)


@pytest.fixture
def wait_until() -> WaitUntil:
    """``await wait_until(predicate, within=10, message="")`` polls until the predicate holds."""
    return _wait_until
