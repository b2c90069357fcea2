"""Queue discovery: configured names plus SCAN for meta hashes / id counters, ignoring look-alikes."""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis

from tests.support.bull import Bull, CountingRedis, delete_prefix
from workermon_queues.bullmq import BullMQBackend


async def test_discovers_bullmq_queues_among_many_unrelated_keys(bull: Bull, redis: aioredis.Redis) -> None:
    p = bull.prefix
    await bull.queue("alpha").add("j", {})
    await bull.queue("beta").add("j", {}, {"jobId": "message-1"})  # job id shaped like the glob
    await bull.queue("gamma").add("j", {}, {"delay": 60_000})
    # A Node BullMQ Queue writes its meta hash on creation, before any job.
    await redis.hset(f"{p}:delta:meta", mapping={"opts.maxLenEvents": 10000, "version": "bullmq:6.7.0"})
    # Older layouts: only the id counter.
    await redis.set(f"{p}:epsilon:id", 7)

    async with redis.pipeline(transaction=False) as pipe:
        for i in range(1200):
            pipe.set(f"{p}:junk:{i}", "x")
            pipe.hset(f"other-{p}:q{i}:meta", "paused", 1)
        pipe.hset(f"{p}:tenant:nested:meta", "opts.maxLenEvents", 10)  # queue `nested` under `p:tenant`
        pipe.set(f"{p}:notahash:meta", "x")  # wrong type for a meta hash
        pipe.hset(f"{p}:notastring:id", "a", 1)  # wrong type for an id counter
        pipe.hset(f"{p}:alpha:identity", "a", 1)  # matches the glob, not the suffix
        pipe.set(f"{p}x:zeta:meta", "x")  # a longer prefix without the separator
        await pipe.execute()
    try:
        counting = CountingRedis(redis)
        backend = BullMQBackend(cast(Any, counting), prefix=p, queues=["configured-only", "alpha"])
        assert await backend.discover() == ["alpha", "beta", "configured-only", "delta", "epsilon", "gamma"]
        assert counting.pipelines == 1  # the type check of all candidates, in one round trip
        assert await BullMQBackend(redis, prefix=p, queues=["b", "a", "b"], discover=False).discover() == [
            "a",
            "b",
        ]
    finally:
        await delete_prefix(redis, f"other-{p}")
        await redis.delete(f"{p}x:zeta:meta")


async def test_prefix_with_glob_characters_is_matched_literally(
    redis: aioredis.Redis, bull_prefix: str
) -> None:
    prefix = bull_prefix + "[x]*?"
    await redis.hset(f"{prefix}:real:meta", "opts.maxLenEvents", 10000)
    await redis.hset(
        f"{bull_prefix}x*?:fake:meta", "opts.maxLenEvents", 10000
    )  # would match an unescaped glob
    try:
        assert await BullMQBackend(redis, prefix=prefix).discover() == ["real"]
    finally:
        await redis.delete(f"{prefix}:real:meta", f"{bull_prefix}x*?:fake:meta")


async def test_discovery_with_decoded_responses(redis_url: str, bull: Bull) -> None:
    await bull.queue("one").add("j", {})
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        backend = BullMQBackend(client, prefix=bull.prefix)
        assert await backend.discover() == ["one"]
        state = (await backend.states(["one"], 0))["one"]
        assert (state.waiting, state.exists) == (1, True)
    finally:
        await client.aclose()
