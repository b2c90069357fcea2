"""The client the queue library reads the watched Redis with: one server (or a Sentinel-managed primary),
or a Redis Cluster, whose commands redis-py routes to the node owning each key's slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript

from .replies import text

RedisClient: TypeAlias = aioredis.Redis | aioredis.RedisCluster


async def queue_script(pipe: Any, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> None:
    """Queue `script` in `pipe`: as EVALSHA (loaded first where the server lacks it), or in a cluster's
    pipeline, which refuses EVALSHA, as EVAL of its text (each node caches it after the first)."""
    if isinstance(pipe, ClusterPipeline):
        pipe.eval(text(script.script), len(keys), *keys, *args)
    else:
        await script(keys=keys, args=args, client=pipe)
