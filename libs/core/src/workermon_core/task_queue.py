"""The taskiq broker the services' task queues use (the collector's schedule, the incidents notifier): a
Redis list, like taskiq-redis's ListQueueBroker, whose listener backs off while Redis is away.

taskiq-redis's own `listen()` catches only the built-in ConnectionError, which redis-py's is not: the
error escapes to taskiq's `run_receiver_task`, which logs it with a traceback (and three more lines
around it) and calls `listen()` again at once. With Redis stopped that is thousands of reconnects a
second: ~3,300 log lines a second and most of a core for the two receivers of one process. Here
`listen()` never raises for a Redis failure: it waits as `Outage` says (the suite's one backoff
policy), logs one line when Redis goes and one when it is back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import redis.exceptions
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from taskiq import BrokerMessage
from taskiq_redis import ListQueueBroker

from workermon_redis_url import is_cluster, is_sentinel

from .backoff import BACKOFF, Backoff
from .redis_store import AnyRedis, SentinelPrimary, cluster, primary
from .server import Outage

# What a Redis that is down, restarting or unreachable raises (redis-py wraps socket errors in its own).
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class TaskQueueBroker(ListQueueBroker):
    """A ListQueueBroker whose `listen()` outlives a Redis outage, backing off instead of spinning."""

    def __init__(self, url: str, queue_name: str, *, backoff: Backoff = BACKOFF, **connection: Any) -> None:
        """`url` of the Redis (redis+sentinel:// and redis+cluster:// too), the list's key; `connection`
        goes to redis-py's connection pool.

        The receiver waits in BRPOP without a timeout, so the socket has none (redis-py's default read
        timeout would cut that wait every few seconds); connecting is bounded to 2 s.
        """
        options: dict[str, Any] = {"socket_timeout": None, "socket_connect_timeout": 2.0, **connection}
        self._primary: SentinelPrimary | None = None
        self._cluster: RedisCluster | None = None
        if is_cluster(url):
            # A cluster client routes the list's key to its node; taskiq-redis's pool goes unused.
            super().__init__("redis://", queue_name=queue_name)
            self._cluster = cluster(url, **options)
        elif is_sentinel(url):
            # taskiq-redis builds its pool from a redis:// URL (opening no connection); a Sentinel-managed
            # primary's pool, which follows failovers, takes its place.
            super().__init__("redis://", queue_name=queue_name)
            self._primary = primary(url, **options)
            pool = self._primary.connection_pool
            assert isinstance(pool, BlockingConnectionPool)
            self.connection_pool = pool
        else:
            super().__init__(url, queue_name=queue_name, **options)
        self.backoff = backoff

    async def shutdown(self) -> None:
        """Close the pool (and, with Sentinel, the sentinels' clients)."""
        await super().shutdown()
        if self._primary is not None:
            await self._primary.aclose()
        if self._cluster is not None:
            await self._cluster.aclose()

    def _connection(self) -> contextlib.AbstractAsyncContextManager[AnyRedis]:
        """A client for one use: the cluster's (kept open), or one over the pool (closed after)."""
        if self._cluster is not None:
            return contextlib.nullcontext(self._cluster)
        return Redis(connection_pool=self.connection_pool)

    async def kick(self, message: BrokerMessage) -> None:
        """Push a message onto its list (the queue named in its labels, else this broker's)."""
        async with self._connection() as conn:
            await conn.lpush(message.labels.get("queue_name") or self.queue_name, message.message)

    async def listen(self) -> AsyncGenerator[bytes, None]:
        """Yield each message pushed to the list; while Redis is down, retry with backoff."""
        outage = Outage("task_queue", self.backoff, queue=self.queue_name)
        while True:
            try:
                async with self._connection() as conn:
                    if outage.down:
                        await conn.ping()
                        outage.ok()
                    popped = await conn.brpop([self.queue_name])
            except REDIS_DOWN as exc:
                outage.failed(exc)
                await outage.pause()
                continue
            if popped:
                message = popped[1]
                yield message if isinstance(message, bytes) else message.encode()
