"""A read-only Lua script that returns everything `BullMQBackend.states` shows of a batch of queues.

Pipelining a dozen plain commands per queue costs the reader a reply to parse per command (about
1,300 for a board of 100 queues, most of a fresh reading's CPU in redis-py); the script answers a
batch of queues in one reply, with the next-in-line jobs' `timestamp` looked up in the same call. It
only reads (LLEN, ZCARD, HMGET, LINDEX, ZRANGE, XLEN, HGET: at most 15 O(1) or O(log n) commands per
queue), so a batch of `STATE_BATCH` queues holds Redis for well under a millisecond, and it runs on a
replica too. On a cluster each call carries one queue (a call's keys must share a slot). Reads are
made with `redis.pcall`: a key of another type than BullMQ gives it fails only its own read, which the
reply names for the caller to describe (see `problems`), as a plain pipeline would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from .problems import Kind

__all__ = ["STATE_BATCH", "STATE_KEYS", "STATE_SCRIPT", "StateReply", "parse_state_reply"]

STATE_BATCH = 100
"""Queues per script call on a single server: enough that replies are few, few enough that a call
holding Redis stays short (about 1,500 commands inside Redis)."""

# The queue's keys the script reads, in the order its reply names them: key suffix and the type BullMQ
# gives it. The script is given only the meta key (for a cluster to route it: BullMQ keeps all of a
# queue's keys in one slot) and builds the others from the queue's prefix, as BullMQ's own scripts do:
# a dozen key arguments per queue cost the reader more to encode than the whole reply to parse.
STATE_KEYS: tuple[tuple[str, Kind], ...] = (
    ("wait", "list"),
    ("active", "list"),
    ("delayed", "zset"),
    ("prioritized", "zset"),
    ("waiting-children", "zset"),
    ("completed", "zset"),
    ("failed", "zset"),
    ("meta", "hash"),
    # The pre-v5 list of a paused queue's waiting jobs.
    ("paused", "list"),
    # Read for its type alone: the collector follows this stream, and a string there is a problem too.
    ("events", "stream"),
)

# KEYS = each queue's meta key; ARGV = each queue's key prefix (`<prefix>:<queue>:`), in the same order.
# Reply per queue: the 7 counts (wait .. failed), the legacy paused length, the meta hash's `paused`,
# `opts.maxLenEvents` and `version`, the `timestamp` of each next-in-line job (wait list's oldest,
# first prioritized, legacy paused list's oldest), then failed reads as (1-based STATE_KEYS position,
# error) pairs. Missing values are false (nil in the reply): a Lua table cannot hold nil.
STATE_SCRIPT = """
local function state(meta_key, base)
  local keys = {
    base .. 'wait', base .. 'active', base .. 'delayed', base .. 'prioritized',
    base .. 'waiting-children', base .. 'completed', base .. 'failed', meta_key, base .. 'paused',
    base .. 'events',
  }
  local errors = {}
  local function read(index, ...)
    local reply = redis.pcall(...)
    if type(reply) == 'table' and reply.err then
      errors[#errors + 1] = index
      errors[#errors + 1] = reply.err
      return false
    end
    return reply
  end
  local counts = {
    read(1, 'LLEN', keys[1]), read(2, 'LLEN', keys[2]), read(3, 'ZCARD', keys[3]),
    read(4, 'ZCARD', keys[4]), read(5, 'ZCARD', keys[5]), read(6, 'ZCARD', keys[6]),
    read(7, 'ZCARD', keys[7]),
  }
  local meta = read(8, 'HMGET', keys[8], 'paused', 'opts.maxLenEvents', 'version') or {false, false, false}
  local legacy = read(9, 'LLEN', keys[9])
  read(10, 'XLEN', keys[10])
  local heads = {}
  local head = read(1, 'LINDEX', keys[1], -1)
  -- '0:<n>' entries are pre-v5 markers, not jobs.
  if head and string.sub(head, 1, 2) ~= '0:' then heads[#heads + 1] = head end
  local first = read(4, 'ZRANGE', keys[4], 0, 0)
  if first and first[1] and string.sub(first[1], 1, 2) ~= '0:' then heads[#heads + 1] = first[1] end
  if legacy and legacy > 0 then
    local tail = read(9, 'LINDEX', keys[9], -1)
    if tail then heads[#heads + 1] = tail end
  end
  local stamps = {}
  for i = 1, #heads do
    -- A job hash of another type is no time: skipped, as a missing one.
    local stamp = redis.pcall('HGET', base .. heads[i], 'timestamp')
    if type(stamp) == 'string' then stamps[#stamps + 1] = stamp end
  end
  return {
    counts[1], counts[2], counts[3], counts[4], counts[5], counts[6], counts[7],
    legacy, meta[1], meta[2], meta[3], stamps, errors,
  }
end
local out = {}
for i = 1, #KEYS do out[i] = state(KEYS[i], ARGV[i]) end
return out
"""


@dataclass(frozen=True, slots=True)
class StateReply:
    """One queue's reply, decoded; a failed read's count is 0 and its key is in `errors`."""

    counts: tuple[int, int, int, int, int, int, int]
    legacy_waiting: int
    meta: tuple[Any, Any, Any]
    timestamps: tuple[Any, ...]
    # STATE_KEYS index -> the error Redis gave for a read of that key (one per key).
    errors: dict[int, ResponseError]


def parse_state_reply(reply: Sequence[Any]) -> StateReply:
    """One queue's part of the script's reply as a StateReply (ValueError when not of its shape)."""
    if len(reply) != 13:
        raise ValueError(f"unexpected state reply of {len(reply)} values")
    # Counts come back as integers, false (None) where the read failed.
    c = [v if type(v) is int else 0 for v in reply[:8]]
    pairs = reply[12]
    errors: dict[int, ResponseError] = {}
    for i in range(0, len(pairs) - 1, 2):
        index = int(pairs[i]) - 1
        if index not in errors:
            message = pairs[i + 1]
            errors[index] = ResponseError(message.decode() if isinstance(message, bytes) else str(message))
    return StateReply(
        counts=(c[0], c[1], c[2], c[3], c[4], c[5], c[6]),
        legacy_waiting=c[7],
        meta=(reply[8], reply[9], reply[10]),
        timestamps=tuple(reply[11]),
        errors=errors,
    )
