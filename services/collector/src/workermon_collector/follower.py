"""Exact per-minute completions and failures, from each queue's BullMQ event stream.

BullMQ's `<prefix>:<queue>:events` stream records every completion and failure even for jobs removed on
completion, but it is capped (about 10,000 entries), so it is followed continuously rather than read
once a minute. Counters live in the suite's Redis, keyed by the minute of the event (the stream id is
Redis server time), next to the follower's cursor. A batch is applied with a compare-and-set on the
cursor: two followers of the same queue (two collector replicas) can both read a batch, but only one
applies it, so every event is counted exactly once.

A stream is written by whatever holds the Redis: entries that are not events (no event name, a job's
event without its job id) are moved past and counted per minute as `skipped`, and a stream key of
another type leaves that queue's cursor where it was (the queue's state reports the problem) while
the other queues are followed as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from workermon_core.redis_store import AnyRedis, key_prefix
from workermon_queues.backend import EventBatch, QueueBackend, stream_id_key
from workermon_queues.classify import FailureClassifier
from workermon_queues.client import queue_script
from workermon_queues.replies import text as _text

log = structlog.get_logger("workermon.collector")

MINUTE_MS = 60_000
COUNTER_TTL_SECONDS = 3 * 24 * 3600
# A queue seen for the first time is counted from what its stream still holds of this long ago.
DEFAULT_HISTORY_MS = 24 * 3600 * 1000
# The largest sequence number of a stream id (an unsigned 64-bit integer).
_MAX_SEQ = 2**64 - 1

# KEYS[1] cursor, KEYS[2] totals; ARGV: expected cursor ('' = none), new cursor, ttl, then
# (minute key, field, increment) triples. Returns 1 when applied, 0 when another follower moved first.
_APPLY = """
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
local ttl = tonumber(ARGV[3])
local i = 4
while i <= #ARGV do
  local key, field, inc = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  if field == 'approx' then
    redis.call('HSET', key, field, 1)
  else
    redis.call('HINCRBY', key, field, inc)
    if field == 'completed' or field == 'failed' or field == 'retried' then
      redis.call('HINCRBY', KEYS[2], field, inc)
    end
  end
  redis.call('EXPIRE', key, ttl)
  i = i + 3
end
return 1
"""


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """What the stream said about one queue in one minute (`skipped`: its entries that were not events)."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    stalled: int = 0
    approximate: bool = False
    failures_by_category: dict[str, int] | None = None
    completed_cumulative: int = 0
    failed_cumulative: int = 0
    skipped: int = 0


def minute_of(time_ms: int) -> int:
    """Start of the minute holding `time_ms`, in ms."""
    return time_ms - time_ms % MINUTE_MS


def first_minute(start: EventBatch, horizon_ms: int) -> int | None:
    """The first minute a newly seen queue's stream (`start`) holds events of, within `horizon_ms`; None
    for an empty stream."""
    if start.first_id is None:
        return None
    return max(minute_of(stream_id_key(start.first_id)[0]), horizon_ms)


def first_cursor(start: EventBatch, horizon_ms: int) -> str:
    """Where to start following a queue seen for the first time, from its stream as it is now (`start`):
    before its oldest entry, so everything the stream still holds is counted in its own minute — no
    further back than `horizon_ms`. When older entries were trimmed away, the first read finds the cursor
    entry missing and marks the oldest entry's minute approximate; nothing else is."""
    horizon = (horizon_ms, 0)
    if start.first_id is None:
        # An empty stream (or none yet): nothing to count, whatever came before.
        return start.last_id or "0-0"
    if start.trimmed:
        oldest = stream_id_key(start.first_id)
        before = (oldest[0], oldest[1] - 1) if oldest[1] else (oldest[0] - 1, _MAX_SEQ)
    else:
        before = (0, 0)  # the stream holds everything it ever had
    ms, seq = max(before, horizon)
    return f"{ms}-{seq}"


class EventFollower:
    """Follows the event streams of many queues and keeps exact per-minute counters."""

    def __init__(
        self,
        backend: QueueBackend,
        redis: AnyRedis,
        prefix: str,
        classifier: FailureClassifier,
        batch_size: int = 2000,
        *,
        history_ms: int = DEFAULT_HISTORY_MS,
    ) -> None:
        """`history_ms`: how far back a queue's stream is counted when the follower first sees it."""
        self.backend = backend
        self.redis = redis
        self.root = key_prefix(prefix) + ":col"
        self.classifier = classifier
        self.batch_size = batch_size
        self.history_ms = history_ms
        self._apply = redis.register_script(_APPLY)

    def _cursor_key(self, queue: str) -> str:
        return f"{self.root}:cur:{queue}"

    def _minute_key(self, queue: str, minute_ms: int) -> str:
        return f"{self.root}:m:{queue}:{minute_ms}"

    def _totals_key(self, queue: str) -> str:
        return f"{self.root}:tot:{queue}"

    def _since_key(self, queue: str) -> str:
        return f"{self.root}:since:{queue}"

    async def _mark_first_seen(self, minutes: dict[str, int | None]) -> None:
        """Remember, per newly seen queue, the first minute its stream had events of, until a cycle has
        written rows for the minutes before its own (`first_seen`, `forget_first_seen`)."""
        marked = {q: m for q, m in minutes.items() if m is not None}
        if not marked:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, minute in marked.items():
                pipe.set(self._since_key(queue), minute, nx=True, ex=COUNTER_TTL_SECONDS)
            await pipe.execute()

    async def first_seen(self, queues: Sequence[str]) -> dict[str, int]:
        """Queues seen for the first time whose earlier minutes have no rows yet: their first minute."""
        if not queues:
            return {}
        raw = await self.redis.mget([self._since_key(q) for q in queues])
        return {q: int(m) for q, m in zip(queues, raw, strict=True) if m is not None}

    async def forget_first_seen(self, queues: Sequence[str]) -> None:
        """The minutes before these queues were first seen have their rows."""
        if queues:
            async with self.redis.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.delete(self._since_key(queue))
                await pipe.execute()

    async def follow(self, queue: str, now_ms: int) -> int:
        """Read and count everything new in one queue's stream; returns the events applied."""
        return (await self.follow_many([queue], now_ms))[queue]

    async def follow_many(self, queues: Sequence[str], now_ms: int) -> dict[str, int]:
        """Bring many queues' counters up to date with a few round trips for all of them together."""
        applied = dict.fromkeys(queues, 0)
        raw = await self.redis.mget([self._cursor_key(q) for q in queues]) if queues else []
        cursors: dict[str, str | None] = {q: _text(c) or None for q, c in zip(queues, raw, strict=True)}
        fresh = [q for q, c in cursors.items() if c is None]
        if fresh:
            starts = await self.backend.read_events_many(dict.fromkeys(fresh), self.batch_size)
            horizon = minute_of(now_ms) - self.history_ms
            # A stream key of another type: try again next time.
            no_ops: list[tuple[str, str, int]] = []
            await self._cas_many(
                [(q, "", first_cursor(starts[q], horizon), no_ops) for q in fresh if not starts[q].problem]
            )
            await self._mark_first_seen({q: first_minute(starts[q], horizon) for q in fresh})
            moved = await self.redis.mget([self._cursor_key(q) for q in fresh])
            cursors.update({q: _text(c) or None for q, c in zip(fresh, moved, strict=True)})
        pending = {q: c for q, c in cursors.items() if c is not None}
        while pending:
            batches = await self.backend.read_events_many(pending, self.batch_size)
            changes = []
            for queue, after in pending.items():
                batch = batches[queue]
                if batch.skipped:
                    log.warning("event_entries_skipped", queue=queue, entries=len(batch.skipped))
                if batch.events or batch.trimmed or batch.skipped:
                    changes.append(
                        (queue, after, batch.last_id or after, self._operations(queue, after, batch))
                    )
            results = await self._cas_many(changes)
            pending = {}
            for (queue, _after, new_cursor, _ops), ok in zip(changes, results, strict=True):
                if ok:
                    applied[queue] += len(batches[queue].events)
                if not ok or batches[queue].consumed >= self.batch_size:
                    # Lost the race to another follower, or more to read: go again from the stored cursor.
                    pending[queue] = new_cursor if ok else (await self._stored_cursor(queue))
        return applied

    async def _stored_cursor(self, queue: str) -> str:
        return _text(await self.redis.get(self._cursor_key(queue))) or "0-0"

    def _operations(self, queue: str, after: str, batch: EventBatch) -> list[tuple[str, str, int]]:
        counts: Counter[tuple[int, str]] = Counter()
        for event in batch.events:
            minute = minute_of(event.time_ms)
            if event.kind == "completed":
                counts[(minute, "completed")] += 1
            elif event.final_failure:
                counts[(minute, "failed")] += 1
                counts[(minute, "cat:" + self.classifier.classify(event.reason))] += 1
            elif event.will_retry:
                counts[(minute, "retried")] += 1
            if event.kind == "stalled":
                counts[(minute, "stalled")] += 1
        for entry_id in batch.skipped:
            counts[(minute_of(int(entry_id.split("-", 1)[0])), "skipped")] += 1
        ops = [(self._minute_key(queue, m), field, n) for (m, field), n in counts.items()]
        if batch.trimmed:
            # Entries between our cursor and the stream's first entry were trimmed away unread.
            lost_from = minute_of(int(after.split("-", 1)[0]))
            lost_to = minute_of(batch.events[0].time_ms) if batch.events else lost_from
            for minute in range(lost_from, lost_to + MINUTE_MS, MINUTE_MS):
                ops.append((self._minute_key(queue, minute), "approx", 1))
        return ops

    async def _cas_many(
        self, changes: Sequence[tuple[str, str, str, Sequence[tuple[str, str, int]]]]
    ) -> list[bool]:
        """Apply (queue, expected cursor, new cursor, counter operations) changes in one pipeline."""
        if not changes:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, expected, new, ops in changes:
                args: list[str | int] = [expected, new, COUNTER_TTL_SECONDS]
                for key, field, inc in ops:
                    args += [key, field, inc]
                await queue_script(
                    pipe, self._apply, [self._cursor_key(queue), self._totals_key(queue)], args
                )
            return [bool(r) for r in await pipe.execute()]

    async def minute(self, queue: str, minute_ms: int) -> MinuteCounts:
        """The counters of one queue and minute, with the cumulative totals."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._minute_key(queue, minute_ms))
            pipe.hgetall(self._totals_key(queue))
            fields, totals = await pipe.execute()
        return _counts(fields, totals)

    async def minutes(self, queues: Sequence[str], minute_ms: int) -> dict[str, MinuteCounts]:
        """Counters of many queues for one minute, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hgetall(self._minute_key(queue, minute_ms))
                pipe.hgetall(self._totals_key(queue))
            replies = await pipe.execute()
        return {q: _counts(replies[2 * i], replies[2 * i + 1]) for i, q in enumerate(queues)}


def _counts(fields: dict[bytes, bytes], totals: dict[bytes, bytes]) -> MinuteCounts:
    values = {k.decode(): v.decode() for k, v in fields.items()}
    categories = {k[4:]: int(v) for k, v in values.items() if k.startswith("cat:")}
    return MinuteCounts(
        completed=int(values.get("completed", 0)),
        failed=int(values.get("failed", 0)),
        retried=int(values.get("retried", 0)),
        stalled=int(values.get("stalled", 0)),
        approximate=values.get("approx") == "1",
        failures_by_category=categories,
        completed_cumulative=int(totals.get(b"completed", 0)),
        failed_cumulative=int(totals.get(b"failed", 0)),
        skipped=int(values.get("skipped", 0)),
    )
