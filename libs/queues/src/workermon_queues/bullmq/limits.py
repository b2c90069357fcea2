"""What holds a BullMQ queue's jobs back: rate limit, global concurrency, priorities, stalled jobs.

Read from BullMQ's own layout (checked against Node BullMQ 5 and 6, `commands/*.lua`):

* rate limit: the `limiter` STRING counts jobs started in the current window and expires when the
  window ends (`prepareJobForProcessing`); the queue is held back while the count is at least the
  limit (`getRateLimitTTL`). A global limit (`queue.setGlobalRateLimit`) is stored in the `meta` hash
  as `max` / `duration`; a limit given to a `Worker`'s constructor is passed to each `moveToActive`
  call and never stored, so only its window can be seen. `queue.rateLimit(ms)` (and a worker's
  RateLimitError) sets the counter to Number.MAX_SAFE_INTEGER for `ms`.
* global concurrency: `meta.concurrency` against LLEN `active` (`isQueueMaxed`).
* priorities: `prioritized` scores are priority * 2^32 + a counter (`addJobWithPriority`), so one
  priority is the score range [p * 2^32, (p + 1) * 2^32) — what `getCountsPerPriority` counts.
* stalled: an active job whose `<job>:lock` is gone is taken for stalled by the next check
  (`moveStalledJobsToWait`), which first marks the active jobs in the `stalled` SET.

All reads are read-only scripts with bounded work: the board's is O(1) per queue; the per-queue one
walks at most `MAX_PRIORITY_LEVELS` priorities (two O(log n) calls each, however many jobs) and looks
at most at `MAX_ACTIVE_EXAMINED` active jobs' locks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio.cluster import RedisCluster

from ..client import RedisClient, queue_script
from ..replies import integer

__all__ = [
    "MANUAL_LIMIT",
    "MAX_ACTIVE_EXAMINED",
    "MAX_PRIORITY_LEVELS",
    "GlobalConcurrency",
    "LimitReader",
    "PriorityLevels",
    "QueueLimits",
    "QueueLoad",
    "RateLimit",
    "StalledJobs",
]

MAX_PRIORITY_LEVELS = 50
"""Distinct priorities counted per queue; the rest are reported as truncated."""
MAX_ACTIVE_EXAMINED = 1000
"""Active jobs whose lock is checked per queue."""
MANUAL_LIMIT = 2**53 - 1
"""What `queue.rateLimit` stores as the window's count (JavaScript's Number.MAX_SAFE_INTEGER)."""
_BATCH = 100

# KEYS = meta keys, ARGV = key prefixes (`<prefix>:<queue>:`). Per queue: meta max, duration,
# concurrency, the limiter's count and PTTL, LLEN active. pcall: a key of another type reads as nothing
# (the queue's state names that problem).
_LIMITS_SCRIPT = """
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then return false end
  return reply
end
local out = {}
for i = 1, #KEYS do
  local base = ARGV[i]
  local meta = read('HMGET', KEYS[i], 'max', 'duration', 'concurrency') or {false, false, false}
  out[i] = {
    meta[1], meta[2], meta[3], read('GET', base .. 'limiter'), read('PTTL', base .. 'limiter'),
    read('LLEN', base .. 'active'),
  }
end
return out
"""

# KEYS[1] = meta (for routing), ARGV = key prefix, max levels, max active examined.
# Reply: {priority, count, ...}, truncated, candidates, examined, SCARD stalled.
_DETAIL_SCRIPT = """
local base = ARGV[1]
local max_levels = tonumber(ARGV[2])
local max_active = tonumber(ARGV[3])
local span = 4294967296
local function read(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then return false end
  return reply
end
local levels = {}
local truncated = 0
local from = 0
while true do
  local first = read('ZRANGEBYSCORE', base .. 'prioritized', string.format('%.0f', from), '+inf',
    'WITHSCORES', 'LIMIT', 0, 1)
  if not first or #first == 0 then break end
  if #levels >= 2 * max_levels then truncated = 1 break end
  local priority = math.floor(tonumber(first[2]) / span)
  local low = priority * span
  local count = read('ZCOUNT', base .. 'prioritized', string.format('%.0f', low),
    string.format('%.0f', low + span - 1))
  levels[#levels + 1] = priority
  levels[#levels + 1] = count or 0
  from = low + span
end
local candidates = 0
local active = read('LRANGE', base .. 'active', 0, max_active - 1) or {}
for i = 1, #active do
  local id = active[i]
  -- '0:<n>' entries are pre-v5 markers, not jobs.
  if string.sub(id, 1, 2) ~= '0:' and redis.call('EXISTS', base .. id .. ':lock') == 0 then
    candidates = candidates + 1
  end
end
return {levels, truncated, candidates, #active, read('SCARD', base .. 'stalled') or 0}
"""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A queue's limiter now (see the module docstring); `limited` only when the limit is known."""

    limited: bool
    resets_in_ms: int | None
    window_count: int
    max: int | None
    duration_ms: int | None
    manual: bool


@dataclass(frozen=True, slots=True)
class GlobalConcurrency:
    """`meta.concurrency` and the jobs active now."""

    limit: int
    running: int

    @property
    def maxed(self) -> bool:
        """Workers take no new job until one finishes."""
        return self.running >= self.limit


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """What the board shows of a queue's limits (None: nothing set, no window open)."""

    rate_limit: RateLimit | None
    concurrency: GlobalConcurrency | None


@dataclass(frozen=True, slots=True)
class PriorityLevels:
    """Prioritized jobs per priority, lowest number first; `truncated` when more priorities exist."""

    levels: tuple[tuple[int, int], ...]
    truncated: bool


@dataclass(frozen=True, slots=True)
class StalledJobs:
    """Active jobs without a lock among the `examined` first ones; `marked` = the `stalled` set's size."""

    candidates: int
    examined: int
    marked: int


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """The per-queue reading GetQueue shows beside the board's."""

    priorities: PriorityLevels
    stalled: StalledJobs


def _rate_limit(max_: Any, duration: Any, count: Any, pttl: Any) -> RateLimit | None:
    limit = integer(max_)
    window = integer(duration)
    counted = integer(count) or 0
    ttl = integer(pttl)
    resets_in = ttl if ttl is not None and ttl > 0 else None
    if limit is None and resets_in is None:
        return None
    manual = counted >= MANUAL_LIMIT
    limited = resets_in is not None and (manual or (limit is not None and counted >= limit))
    return RateLimit(
        limited=limited,
        resets_in_ms=resets_in,
        window_count=counted if resets_in is not None else 0,
        max=limit,
        duration_ms=window,
        manual=manual and resets_in is not None,
    )


def parse_limits(reply: Sequence[Any]) -> QueueLimits:
    """One queue's part of the limits script's reply."""
    max_, duration, concurrency, count, pttl, active = reply
    limit = integer(concurrency)
    return QueueLimits(
        rate_limit=_rate_limit(max_, duration, count, pttl),
        concurrency=None if limit is None else GlobalConcurrency(limit, integer(active) or 0),
    )


class LimitReader:
    """Reads `QueueLimits` for many queues and `QueueLoad` for one, over the caller's client."""

    def __init__(self, redis: RedisClient, prefix: str = "bull") -> None:
        self.redis = redis
        self.prefix = prefix
        self._limits = redis.register_script(_LIMITS_SCRIPT)
        self._detail = redis.register_script(_DETAIL_SCRIPT)

    def key(self, queue: str, kind: str) -> str:
        """The Redis key of one of a queue's structures."""
        return f"{self.prefix}:{queue}:{kind}"

    async def limits(self, names: Sequence[str]) -> dict[str, QueueLimits]:
        """Rate limit and global concurrency of every named queue, in one pipelined round trip."""
        queues = list(dict.fromkeys(names))
        if not queues:
            return {}
        batch = 1 if isinstance(self.redis, RedisCluster) else _BATCH
        batches = [queues[i : i + batch] for i in range(0, len(queues), batch)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in batches:
                bases = [self.key(name, "") for name in part]
                await queue_script(pipe, self._limits, [b + "meta" for b in bases], bases)
            replies = await pipe.execute(raise_on_error=False)
        result: dict[str, QueueLimits] = {}
        for part, reply in zip(batches, replies, strict=True):
            if isinstance(reply, Exception):
                continue  # the queue's state reports what is wrong; its limits stay unknown
            for name, one in zip(part, reply, strict=True):
                result[name] = parse_limits(one)
        return result

    async def load(self, queue: str) -> QueueLoad:
        """Prioritized jobs per priority and stall candidates of one queue (one bounded script)."""
        base = self.key(queue, "")
        levels, truncated, candidates, examined, marked = await self._detail(
            keys=[base + "meta"], args=[base, MAX_PRIORITY_LEVELS, MAX_ACTIVE_EXAMINED]
        )
        pairs = [int(v) for v in levels]
        return QueueLoad(
            priorities=PriorityLevels(
                levels=tuple(zip(pairs[0::2], pairs[1::2], strict=True)), truncated=bool(truncated)
            ),
            stalled=StalledJobs(candidates=int(candidates), examined=int(examined), marked=int(marked)),
        )
