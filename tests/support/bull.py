"""Fixtures for the queue-backend tests: real bullmq queues and workers under a key prefix of their own."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker

from workermon_core.redis_store import key_prefix
from workermon_queues.bullmq import BullMQBackend, BullMQJobs


async def until(check: Callable[[], Awaitable[bool]], limit: float = 20.0, what: str = "condition") -> None:
    """Poll `check` until it holds, failing the test after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {limit}s")
        await asyncio.sleep(0.05)


async def delete_suite_keys(redis: aioredis.Redis, redis_prefix: str) -> None:
    """Delete the suite's own keys under a WORKERMON_REDIS_PREFIX (hash-tagged: `{prefix}:...`)."""
    await delete_prefix(redis, key_prefix(redis_prefix))


async def delete_prefix(redis: aioredis.Redis, prefix: str) -> None:
    """Delete every key under `prefix:` (SCAN, so it is safe on a shared Redis)."""
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"
    batch: list[Any] = []
    async for key in redis.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await redis.unlink(*batch)
            batch.clear()
    if batch:
        await redis.unlink(*batch)


class Bull:
    """bullmq queues and workers sharing one unique prefix; closes them and deletes the keys at the end."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.queues: dict[str, Queue] = {}
        self.workers: list[Worker] = []

    @property
    def opts(self) -> dict[str, Any]:
        return {"connection": self.url, "prefix": self.prefix}

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue(name, self.opts)
        return self.queues[name]

    def worker(
        self,
        name: str,
        processor: Callable[..., Awaitable[Any]],
        options: dict[str, Any] | None = None,
        **opts: Any,
    ) -> Worker:
        # `options` carries what cannot be a keyword here (a worker's own `name`).
        worker = Worker(name, processor, {**self.opts, **(options or {}), **opts})
        self.workers.append(worker)
        return worker

    async def close(self) -> None:
        for worker in self.workers:
            await worker.close(force=True)
        for queue in self.queues.values():
            await queue.close()


@pytest.fixture
def bull_prefix() -> str:
    return "wmq-" + uuid.uuid4().hex[:12]


@pytest.fixture
async def bull(redis_url: str, redis: aioredis.Redis, bull_prefix: str) -> AsyncIterator[Bull]:
    env = Bull(redis_url, bull_prefix)
    try:
        yield env
    finally:
        await env.close()
        await delete_prefix(redis, bull_prefix)


@pytest.fixture
def backend(redis: aioredis.Redis, bull: Bull) -> BullMQBackend:
    """A backend over the test's prefix (through `bull`, whose teardown deletes its keys)."""
    return BullMQBackend(redis, prefix=bull.prefix)


class CountingRedis:
    """Wraps a client to count pipelines and refuse KEYS (the backend must never use it)."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.inner.pipeline(*args, **kwargs)

    async def keys(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("KEYS must not be used")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
async def jobs(redis: aioredis.Redis, bull: Bull) -> AsyncIterator[BullMQJobs]:
    """Job browsing and actions over the test's prefix, sharing the test's Redis client."""
    actions = BullMQJobs(redis, prefix=bull.prefix)
    try:
        yield actions
    finally:
        await actions.close()


class Gate:
    """A processor that holds every job it gets until released (keeps jobs active on purpose)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def __call__(self, job: Job, token: str) -> str:
        self.started.append(job.id)
        await self.release.wait()
        return "released"
