"""BullMQ's implementation of the queue backend: discovery, states, the event stream, finished jobs.

`BullMQBackend` reads BullMQ's Redis layout directly, with pipelined raw commands and, for a queue's
state, one small read-only script per queue, so a collector can describe 1,000+ queues in a couple of
round trips without blocking Redis.

BullMQ event stream (`<prefix>:<queue>:events`), as verified against python bullmq 3.4.4 and Node
BullMQ 6.7.0 with real workers (both write the same entries; fields other than `event`/`jobId` shown
where present):

* job that completes::

      added(name) -> waiting -> active(prev=waiting) -> completed(returnvalue, prev=active)
      [-> drained, when the queue became empty]

* failed attempt that will be retried, with backoff: no `failed` entry at all, only::

      active(prev=waiting) -> delayed(delay=<ts of retry>)       # moveToDelayed, no `prev` field
      ... -> waiting(prev=delayed) -> active(prev=waiting)         # when the backoff expires

* failed attempt that will be retried immediately (no backoff): no `failed` entry either::

      active(prev=waiting) -> waiting(prev=active) -> active(prev=waiting)

* the last attempt fails (attempts exhausted; also a job without `attempts`, which BullMQ stores as
  `attempts: 0`)::

      failed(failedReason, prev=active) -> retries-exhausted(attemptsMade=N)   # adjacent entries

* failed early with attempts left (UnrecoverableError, discarded job, backoff strategy returning -1):
  `failed(failedReason, prev=active)` with no `retries-exhausted` after it.

* removeOnComplete / removeOnFail: the stream is unchanged (`completed` / `failed` +
  `retries-exhausted` are written; only the job hash and its completed/failed ZSET member are gone).

* a stalled job put back: `waiting(prev=active)` immediately followed by `stalled` for the same job.
* a job added with a delay: `added` immediately followed by `delayed` for the same job.

So in BullMQ a `failed` entry always means a final failure, and a retried attempt shows up only as a
`delayed` or `waiting(prev=active)` entry. `QueueEvent.will_retry` is derived accordingly:

* `failed` -> `will_retry=False`, always; `attempts_made` is taken from the adjacent
  `retries-exhausted` entry (None when the job failed early).
* `delayed` -> `will_retry=True` unless the job's previous entry in the read (including the entry at
  the cursor) shows it was not active (`added`, `delayed`, `waiting-children`, ...): a retry with
  backoff always comes straight from `active`, a new delayed job always right after its `added`.
* `waiting(prev=active)` -> `will_retry=True` unless the next entry is `stalled` for the same job.

A consumer therefore counts final failures as `kind == "failed"` and retried attempts as
`will_retry` events. What the stream cannot tell apart (and is counted as a retry): a processor
moving its own job to delayed (`job.moveToDelayed` + DelayedError), Node's manual rate limit
(RateLimitError puts the job back with `waiting(prev=active)`), and a delayed parent released by its
children or a `changeDelay` whose earlier entries lie before the cursor.

Stream capping: every script that finishes or adds a job trims the stream to `opts.maxLenEvents` from
the queue's meta hash (written as 10,000 when missing; Node sets it from `streams.events.maxLen`),
with approximate MAXLEN (`~`), so Redis keeps whole radix-tree nodes (up to ~100 entries more). Node
BullMQ also writes `version` ("bullmq:6.7.0") to the meta hash; python bullmq does not. A queue doing
more than ~maxLenEvents / 5 jobs between two reads loses entries. `EventBatch.trimmed` then says so:
the cursor's entry is gone and the stream now starts after it, and the stream was trimmed at all
(Redis 7's `entries-added` > length; on older servers, length >= maxLenEvents). Trimming does not
update Redis's `max-deleted-entry-id` (only XDEL does), so that cannot be used. When the cursor was
exactly the last entry trimmed, a loss is reported although none happened (rare: trimming drops whole
nodes of ~100 entries)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from ..backend import EventBatch, FinishedJob, QueueEvent, QueueState, stream_id_key
from ..client import RedisClient, queue_script
from ..replies import epoch_ms, integer, text, wrong_type
from ..settings import QueueSettings
from .problems import key_problems, wrong_types_kept
from .state_script import STATE_BATCH, STATE_KEYS, STATE_SCRIPT, StateReply, parse_state_reply

_STREAM_ID = re.compile(r"^(\d+)(?:-(\d+))?$")


_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


StreamEntry = tuple[str, Mapping[str, str]]

FUTURE_TOLERANCE_MS = 60_000
"""How far ahead of the reader's clock a job's `timestamp` may be and still count (clock skew)."""


def _normalize_id(stream_id: str) -> str:
    """`5` -> `5-0`; raises ValueError for anything that is not a stream id."""
    match = _STREAM_ID.match(stream_id)
    if not match:
        raise ValueError(f"not a stream id: {stream_id!r}")
    return f"{int(match.group(1))}-{int(match.group(2) or 0)}"


def _starts_at(raw_entries: Any, cursor: str) -> bool:
    """Whether an XRANGE reply begins with the cursor's own entry (so nothing before it was lost)."""
    if isinstance(raw_entries, Exception) or not raw_entries:
        return False
    return text(raw_entries[0][0]) == cursor


def _ever_trimmed(info: Mapping[str, Any], max_len: int | None) -> bool:
    """Whether entries of the stream XINFO STREAM describes were ever trimmed away."""
    length = int(info["length"])
    added = info.get("entries-added")  # Redis 7+
    # Before Redis 7: BullMQ trims with MAXLEN ~, which never leaves fewer than max_len entries.
    return int(added) > length if added is not None else max_len is None or length >= max_len


def _entry(raw: Any) -> StreamEntry:
    eid, fields = raw
    return text(eid), {text(k): text(v) for k, v in (fields or {}).items()}


def _is(entry: Mapping[str, str] | None, kind: str, job_id: str) -> bool:
    return entry is not None and entry.get("event") == kind and entry.get("jobId") == job_id


# Entries about one job: without a `jobId` they cannot be what BullMQ wrote, so they are not events.
_JOB_EVENTS = frozenset(
    {
        "added",
        "waiting",
        "active",
        "progress",
        "completed",
        "failed",
        "retries-exhausted",
        "delayed",
        "stalled",
        "removed",
        "waiting-children",
    }
)


def unusable(fields: Mapping[str, str]) -> bool:
    """True for a stream entry that is not an event: no event name, or a job's event with no job id.

    Such entries are skipped (and counted) by readers; anything else, including event names this code
    does not know, is passed on.
    """
    kind = fields.get("event", "")
    return not kind or (kind in _JOB_EVENTS and not fields.get("jobId"))


def build_events(entries: Sequence[StreamEntry], after: str | None, count: int) -> list[QueueEvent]:
    """Turn raw stream entries into events, deciding `will_retry` from their neighbours.

    `entries` is an inclusive read from `after`: optionally the entry at `after` itself (context only),
    then up to `count` entries to return, then optionally one more (look-ahead only). Context and
    look-ahead let an entry at a batch edge be judged exactly as in the middle of a batch. Entries that
    are not events (`unusable`) are left out.
    """
    start = 1 if entries and after is not None and entries[0][0] == after else 0
    body = entries[start : start + count]
    lookahead = entries[start + count] if len(entries) > start + count else None
    last_kind: dict[str, str] = {}
    if start:
        context = entries[0][1]
        if context.get("jobId"):
            last_kind[context["jobId"]] = context.get("event", "")

    events: list[QueueEvent] = []
    for i, (event_id, fields) in enumerate(body):
        if unusable(fields):
            continue
        following = body[i + 1][1] if i + 1 < len(body) else (lookahead[1] if lookahead else None)
        kind = fields.get("event", "")
        job_id = fields.get("jobId", "")
        prev = fields.get("prev", "")
        reason = ""
        attempts: int | None = None
        will_retry = False
        if kind == "failed":
            reason = fields.get("failedReason", "")
            if following is not None and _is(following, "retries-exhausted", job_id):
                attempts = integer(following.get("attemptsMade"))
        elif kind == "retries-exhausted":
            attempts = integer(fields.get("attemptsMade"))
        elif kind == "delayed":
            # A retry with backoff goes active -> delayed; a new delayed job's `added` is right before.
            will_retry = last_kind.get(job_id, "active") == "active"
        elif kind == "waiting" and prev == "active":
            # Stalled-job recovery writes the same entry, then `stalled` for that job straight after.
            will_retry = not _is(following, "stalled", job_id)
        if job_id:
            last_kind[job_id] = kind
        events.append(
            QueueEvent(
                event_id=event_id,
                time_ms=stream_id_key(event_id)[0],
                kind=kind,
                job_id=job_id,
                reason=reason,
                attempts_made=attempts,
                will_retry=will_retry,
                prev=prev,
            )
        )
    return events


def _unreadable(name: str, problem: str) -> QueueState:
    """A queue none of whose state could be read (its script failed as a whole)."""
    return QueueState(
        name=name,
        waiting=0,
        active=0,
        delayed=0,
        prioritized=0,
        waiting_children=0,
        completed=0,
        failed=0,
        paused=False,
        oldest_waiting_ms=None,
        exists=True,
        problem=problem,
    )


def _glob_escape(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class BullMQBackend:
    """`QueueBackend` over BullMQ's Redis keys (`<prefix>:<queue>:<type>`), read with raw commands.

    `queues` are always monitored; with `discover=True` queues found by SCAN are added. The client
    may use `decode_responses` either way; it is not closed here (its owner closes it).
    """

    def __init__(
        self,
        redis: RedisClient,
        prefix: str = "bull",
        queues: Sequence[str] = (),
        discover: bool = True,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.redis = redis
        self.prefix = prefix
        self.queues = list(dict.fromkeys(q for q in queues if q))
        self.discover_enabled = discover
        self._state_script = redis.register_script(STATE_SCRIPT)

    @classmethod
    def from_settings(cls, redis: RedisClient, settings: QueueSettings) -> BullMQBackend:
        """The backend the settings describe (prefix, configured queues, discovery)."""
        return cls(redis, settings.queue_prefix, settings.queue_names, settings.discover_queues)

    def key(self, queue: str, kind: str) -> str:
        """The Redis key of one of a queue's structures (`wait`, `meta`, `events`, a job id, ...)."""
        return f"{self.prefix}:{queue}:{kind}"

    # -- discovery ---------------------------------------------------------------------------------

    async def discover(self) -> list[str]:
        """Configured queues plus, when enabled, every queue with a meta hash or id counter.

        Uses SCAN (never KEYS). Names containing ':' are not discovered: BullMQ (Node) forbids them,
        and such keys usually belong to a longer prefix (`bull:tenant:q:meta` is queue `q` under
        `bull:tenant`); a queue whose name has ':' can still be configured explicitly.
        """
        names = set(self.queues)
        if self.discover_enabled:
            names.update(await self._scan_queues())
        return sorted(names)

    async def _scan_queues(self) -> set[str]:
        # One pass matching both `:meta` and `:id` (a glob cannot say "meta or id"); the exact suffix is
        # checked below, so job keys whose id starts with "me"/"id" cost only a little transfer.
        pattern = _glob_escape(self.prefix) + ":*:[mi][ed]*"
        head = len(self.prefix) + 1
        candidates: list[tuple[str, str, str]] = []  # key, queue name, expected TYPE
        # On a cluster, scan_iter walks every primary (each holds the queues of its slots).
        async for raw in self.redis.scan_iter(match=pattern, count=1000):
            try:
                key = raw.decode() if isinstance(raw, bytes) else raw
            except UnicodeDecodeError:
                continue
            for suffix, expected in ((":meta", "hash"), (":id", "string")):
                if key.endswith(suffix):
                    name = key[head : -len(suffix)]
                    if name and ":" not in name:
                        candidates.append((key, name, expected))
        if not candidates:
            return set()
        # A key shaped like a queue's but of the wrong type belongs to something else.
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, _, _ in candidates:
                pipe.type(key)
            types = await pipe.execute()
        return {
            name
            for (_, name, expected), kind in zip(candidates, types, strict=True)
            if text(kind) == expected
        }

    # -- state -------------------------------------------------------------------------------------

    async def states(self, names: Sequence[str], now_ms: int) -> dict[str, QueueState]:
        """Counts, paused flag and oldest waiting age of every named queue.

        One pipelined round trip: a read-only script reads a batch of queues (`state_script`), next-in-line
        jobs' `timestamp` included. `waiting` includes jobs in the pre-v5 `paused` list. A queue whose
        keys are not BullMQ's (a key of another type) comes back with `problem` saying which, and costs
        the others nothing; describing it takes one more round trip, only then.
        """
        queues = list(dict.fromkeys(names))
        if not queues:
            return {}
        batch = 1 if isinstance(self.redis, RedisCluster) else STATE_BATCH
        batches = [queues[i : i + batch] for i in range(0, len(queues), batch)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for names_in_batch in batches:
                bases = [self.key(name, "") for name in names_in_batch]
                await queue_script(pipe, self._state_script, [b + "meta" for b in bases], bases)
            # A batch whose script failed as a whole must not cost the others their state.
            batch_replies = await pipe.execute(raise_on_error=False)
        replies: list[Any] = []
        for names_in_batch, reply in zip(batches, batch_replies, strict=True):
            if isinstance(reply, Exception) or len(reply) != len(names_in_batch):
                replies += [reply] * len(names_in_batch)
            else:
                replies += reply

        parsed: dict[str, StateReply] = {}
        failed: dict[str, str] = {}
        for name, reply in zip(queues, replies, strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                parsed[name] = parse_state_reply(reply)
            except (ResponseError, ValueError, TypeError) as exc:
                failed[name] = f"{self.key(name, '*')}: {exc}"
        problems = {**failed, **await self._problems(parsed)}

        result: dict[str, QueueState] = {}
        for name in queues:
            r = parsed.get(name)
            if r is None:
                result[name] = _unreadable(name, failed[name])
                continue
            stamps = [epoch_ms(value) for value in r.timestamps]
            # A time far ahead of ours is not when the job was added (or the producer's clock is wrong).
            times = [t for t in stamps if t is not None and t <= now_ms + FUTURE_TOLERANCE_MS]
            oldest = min(times) if times else None
            problem = problems.get(name)
            result[name] = QueueState(
                name=name,
                waiting=r.counts[0] + r.legacy_waiting,
                active=r.counts[1],
                delayed=r.counts[2],
                prioritized=r.counts[3],
                waiting_children=r.counts[4],
                completed=r.counts[5],
                failed=r.counts[6],
                paused=r.meta[0] is not None,
                oldest_waiting_ms=None if oldest is None else max(now_ms - oldest, 0),
                exists=problem is not None
                or any(v is not None for v in r.meta)
                or any(r.counts)
                or r.legacy_waiting > 0,
                problem=problem,
            )
        return result

    async def _problems(self, parsed: Mapping[str, StateReply]) -> dict[str, str]:
        """Queue -> what is wrong with its keys, for the queues some of whose reads failed."""
        failures = [
            (name, self.key(name, STATE_KEYS[index][0]), STATE_KEYS[index][1], error)
            for name, r in parsed.items()
            for index, error in r.errors.items()
        ]
        if not failures:
            return {}
        described = await key_problems(self.redis, [(key, kind, err) for _, key, kind, err in failures])
        problems: dict[str, list[str]] = {}
        for name, key, _, _ in failures:
            found = problems.setdefault(name, [])
            if described[key] not in found:
                found.append(described[key])
        return {name: "; ".join(found) for name, found in problems.items()}

    # -- events ------------------------------------------------------------------------------------

    async def read_events(self, queue: str, after: str | None, count: int = 1000) -> EventBatch:
        """Up to `count` events after the stream id `after` (non-blocking; one round trip).

        `after=None` starts at the current end: no events, `last_id` = the newest id. Pass the
        returned `last_id` as the next `after`.
        """
        return (await self.read_events_many({queue: after}, count))[queue]

    async def read_events_many(
        self, cursors: Mapping[str, str | None], count: int = 1000
    ) -> dict[str, EventBatch]:
        """`read_events` for many queues in one pipelined round trip (queue -> cursor)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        plan = [(queue, None if after is None else _normalize_id(after)) for queue, after in cursors.items()]
        if not plan:
            return {}
        # Round one: the entries after each cursor (the cursor's own entry included, as a check).
        followed = {queue: after for queue, after in plan if after is not None}
        ranges: dict[str, Any] = {}
        if followed:
            async with self.redis.pipeline(transaction=False) as pipe:
                for queue, cursor in followed.items():
                    # Inclusive of the cursor (context) and one past `count` (look-ahead): see build_events.
                    pipe.execute_command("XRANGE", self.key(queue, "events"), cursor, "+", "COUNT", count + 2)
                ranges = dict(zip(followed, await pipe.execute(raise_on_error=False), strict=True))
        # Round two, only where needed: the stream described (XINFO STREAM) and its cap, for queues
        # without a cursor and for those whose cursor entry is gone (trimmed, or the stream replaced).
        # The common case, a cursor still in the stream, costs one command per queue.
        unsure = [
            queue
            for queue, _ in plan
            if queue not in followed
            or not (wrong_type(ranges[queue]) or _starts_at(ranges[queue], followed[queue]))
        ]
        infos: dict[str, tuple[Any, Any]] = {}
        if unsure:
            async with self.redis.pipeline(transaction=False) as pipe:
                for queue in unsure:
                    pipe.xinfo_stream(self.key(queue, "events"))
                    pipe.execute_command("HGET", self.key(queue, "meta"), "opts.maxLenEvents")
                replies = await pipe.execute(raise_on_error=False)
            infos = {queue: (replies[2 * i], replies[2 * i + 1]) for i, queue in enumerate(unsure)}

        batches: dict[str, EventBatch] = {}
        broken: dict[str, BaseException] = {}
        for queue, after in plan:
            raw_entries = ranges.get(queue)
            info, max_len = infos.get(queue, (None, None))
            failure = next((r for r in (raw_entries, info) if wrong_type(r)), None)
            if failure is not None:
                # A stream key of another type costs its own queue its events, never the others theirs.
                broken[queue] = failure
                batches[queue] = EventBatch(events=[], last_id=after, trimmed=False, max_len=None)
                continue
            batches[queue] = self._batch(after, count, raw_entries, info, max_len)
        if broken:
            keys = {queue: self.key(queue, "events") for queue in broken}
            described = await key_problems(self.redis, [(keys[q], "stream", e) for q, e in broken.items()])
            for queue in broken:
                batches[queue] = replace(batches[queue], problem=described[keys[queue]])
        return batches

    @classmethod
    def _batch(cls, after: str | None, count: int, raw_entries: Any, info: Any, max_len: Any) -> EventBatch:
        """One queue's batch from its replies (XRANGE when `after` is set, XINFO STREAM, the cap)."""
        if wrong_type(max_len):
            max_len = None  # the meta hash is broken, the stream may not be: read it all the same
        if isinstance(info, ResponseError):
            info = None  # no stream (yet, or any more)
        for reply in (raw_entries, max_len, info):
            if isinstance(reply, Exception):
                raise reply
        return cls._read_batch(after, count, raw_entries, info, integer(max_len))

    @staticmethod
    def _read_batch(
        after: str | None, count: int, raw_entries: Any, info: Mapping[str, Any] | None, max_len: int | None
    ) -> EventBatch:
        last_generated = text(info["last-generated-id"]) if info else None
        first = info.get("first-entry") if info else None
        oldest_left = text(first[0]) if first else last_generated
        if after is None:
            return EventBatch(
                events=[],
                last_id=last_generated,
                trimmed=info is not None and _ever_trimmed(info, max_len),
                max_len=max_len,
                first_id=text(first[0]) if first else None,
            )
        entries = [_entry(e) for e in raw_entries or []]
        events = build_events(entries, after, count)
        start = 1 if entries and entries[0][0] == after else 0
        body = entries[start : start + count]
        skipped = tuple(event_id for event_id, fields in body if unusable(fields))
        trimmed = False
        if info and not (entries and entries[0][0] == after):
            # The cursor entry is gone. Trimming drops the oldest entries first, so while it exists
            # nothing newer was lost; without it, entries between the cursor and the stream's first
            # entry may have been (or the cursor was the last of the dropped ones: we cannot tell).
            trimmed = (
                _ever_trimmed(info, max_len)
                and oldest_left is not None
                and stream_id_key(oldest_left) > stream_id_key(after)
            )
        if body:
            last_id: str | None = body[-1][0]  # past skipped entries too, or they would be read forever
        elif trimmed:
            last_id = last_generated  # everything up to it is gone: do not report the same loss again
        else:
            last_id = after
        return EventBatch(events=events, last_id=last_id, trimmed=trimmed, max_len=max_len, skipped=skipped)

    async def latest_event_id(self, queue: str) -> str | None:
        """Id of the newest entry added to the queue's event stream (None without a stream)."""
        try:
            info = await self.redis.xinfo_stream(self.key(queue, "events"))
        except ResponseError:
            return None
        return text(info["last-generated-id"])

    # -- finished jobs -----------------------------------------------------------------------------

    async def finished_between(
        self, queue: str, start_ms: int, end_ms: int, limit: int = 10_000
    ) -> list[FinishedJob]:
        """Jobs that finished in [start_ms, end_ms), earliest first, at most `limit` (two round trips).

        BullMQ scores its completed/failed ZSETs by finishedOn. Jobs removed on completion/failure (or
        trimmed by keep-count/age) are not there; jobs removed between the two round trips are skipped.
        """
        return (await self.finished_between_many([queue], start_ms, end_ms, limit))[queue]

    async def finished_between_many(
        self, queues: Sequence[str], start_ms: int, end_ms: int, limit: int = 10_000
    ) -> dict[str, list[FinishedJob]]:
        """`finished_between` for many queues in two round trips for all of them together."""
        result: dict[str, list[FinishedJob]] = {q: [] for q in queues}
        if end_ms <= start_ms or limit < 1 or not queues:
            return result
        states: tuple[Literal["completed", "failed"], ...] = ("completed", "failed")
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                for state in states:
                    pipe.zrangebyscore(
                        self.key(queue, state), start_ms, f"({end_ms}", start=0, num=limit, withscores=True
                    )
            # A set of another type holds nothing to measure (the queue's state says what is wrong).
            ranges = [
                [] if isinstance(r, Exception) else r
                for r in wrong_types_kept(await pipe.execute(raise_on_error=False))
            ]
        wanted: list[tuple[str, float, str, Literal["completed", "failed"]]] = []
        for i, queue in enumerate(queues):
            members: list[tuple[float, str, Literal["completed", "failed"]]] = []
            for j, state in enumerate(states):
                members += [(float(score), text(job_id), state) for job_id, score in ranges[2 * i + j]]
            members.sort()
            wanted += [(queue, *member) for member in members[:limit]]
        if not wanted:
            return result
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, _, job_id, _ in wanted:
                pipe.execute_command(
                    "HMGET", self.key(queue, job_id), "timestamp", "processedOn", "finishedOn", "atm"
                )
            fields = wrong_types_kept(await pipe.execute(raise_on_error=False))
        for (queue, score, job_id, state), values in zip(wanted, fields, strict=True):
            if isinstance(values, Exception):
                continue  # a job key of another type: that job alone is not measured
            timestamp, processed, finished, attempts = values
            enqueued = epoch_ms(timestamp)
            if enqueued is None:
                continue  # gone, or not a time: nothing to measure from
            finished_ms = epoch_ms(finished)
            result[queue].append(
                FinishedJob(
                    job_id=job_id,
                    state=state,
                    enqueued_ms=enqueued,
                    started_ms=epoch_ms(processed),
                    finished_ms=finished_ms if finished_ms is not None else epoch_ms(score),
                    attempts_made=integer(attempts),
                )
            )
        return result
