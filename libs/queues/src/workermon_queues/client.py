"""The client the queue library reads the watched Redis with: one server (or a Sentinel-managed primary),
or a Redis Cluster, whose commands redis-py routes to the node owning each key's slot."""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis

RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster
