"""`JobActions` over BullMQ: listings and reads with raw pipelined commands, actions with BullMQ's scripts.

Reads never touch a job's `data` or `returnvalue` except in `get_job`, which cuts them server-side so
a 50 MB payload does not cross the wire. Actions go through the python `bullmq` package (its Lua
scripts are the ones Node BullMQ runs), sharing the caller's Redis client rather than opening new
connections. Bulk retry/promote run BullMQ's per-job scripts (`reprocessJob`, `promote`) pipelined
in batches instead of its bulk `moveJobsToWait`: that one only moves the oldest jobs, ignores
priorities and does not say how many it moved, while the count returned here must be exact.

Listing order within a state is the reverse of the order BullMQ runs or recorded them: for the wait
and paused lists and the finished sets that is newest first; for `delayed` the jobs due last come
first, for `prioritized` the lowest priority first. Cursors are positions (member and score, or
member and index) rather than bare offsets, so jobs added at the head while a client pages do not
shift the pages it has yet to read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from bullmq import Queue

from workermon_queues.classify import FailureClassifier
from workermon_queues.jobs import (
    CLEANABLE_STATES,
    JOB_STATES,
    JobDetail,
    JobIsActive,
    JobPage,
    JobSummary,
    SearchPage,
    SearchQuery,
    TimelineEntry,
)

from ..client import RedisClient, queue_script
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..replies import epoch_ms, integer, is_utf8, text
from .problems import Kind, key_problems, wrong_types_kept
from .search import BullMQSearch

__all__ = ["MAX_EXAMINED", "MAX_PAGE_SIZE", "BullMQJobs"]

MAX_PAGE_SIZE = 1000
"""Largest page `list_jobs` returns."""

MAX_EXAMINED = 5000
"""Most jobs one filtered `list_jobs` call looks at before returning a (possibly short) page."""

_CHUNK = 500  # jobs read per pipelined HMGET while filtering, and jobs moved per action batch
_LOG_LINES = 100
OBLITERATE_BATCH = 1000  # jobs per call of BullMQ's obliterate script, as BullMQ itself uses
_REASON_CHARS = 300
_MAX_PRIORITY = 2_097_152  # BullMQ's limit (2^21)

# State -> (key suffix, "list" | "zset").
_SOURCES: dict[str, tuple[str, str]] = {
    "waiting": ("wait", "list"),
    "active": ("active", "list"),
    "delayed": ("delayed", "zset"),
    "prioritized": ("prioritized", "zset"),
    "waiting_children": ("waiting-children", "zset"),
    "completed": ("completed", "zset"),
    "failed": ("failed", "zset"),
    "paused": ("paused", "list"),
}

# The order BullMQ's getState script checks them in (a job caught mid-move is reported as the first).
_STATE_ORDER = (
    "completed",
    "failed",
    "delayed",
    "prioritized",
    "active",
    "waiting",
    "paused",
    "waiting_children",
)

_SUMMARY_FIELDS = (
    "name",
    "timestamp",
    "processedOn",
    "finishedOn",
    "atm",
    "attemptsMade",  # BullMQ before v5 kept the attempts made here
    "failedReason",
    "opts",
    "delay",
    "priority",
    "deid",
    "stc",
    "stalledCounter",  # BullMQ 5 before `stc` (5.47 still writes this)
)
_DETAIL_FIELDS = (*_SUMMARY_FIELDS, "ats", "progress", "stacktrace", "pb", "parentKey")
_TIME_FIELDS = ("timestamp", "processedOn", "finishedOn")
# Fields shown as text (data and returnvalue are read apart, cut to size).
_TEXT_FIELDS = ("name", "failedReason", "opts", "progress", "stacktrace", "pb", "parentKey")

# HGET cut to a byte budget inside Redis, backing off to a UTF-8 character boundary so the text decodes
# whatever the client's decode setting.
_CUT_SCRIPT = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local n = tonumber(ARGV[2])
if n >= #v then return v end
while n > 0 do
  local b = string.byte(v, n + 1)
  if b < 128 or b >= 192 then break end
  n = n - 1
end
return string.sub(v, 1, n)
"""


# BullMQ's removeDeduplicationKey-1.lua: the id is freed only while it still names this job, so a job
# added with it since (holding it now) keeps it.
_RELEASE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current and current == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _first_line(reason: str) -> str:
    return reason.split("\n", 1)[0].strip()[:_REASON_CHARS]


def _not_found_queue(queue: str) -> NotFound:
    return NotFound(f"queue {queue!r} does not exist", reason="QUEUE_NOT_FOUND", metadata={"queue": queue})


def _not_found_job(queue: str, job_id: str) -> NotFound:
    return NotFound(
        f"job {job_id!r} does not exist in queue {queue!r}",
        reason="JOB_NOT_FOUND",
        metadata={"queue": queue, "job_id": job_id},
    )


def _not_in_state(queue: str, job_id: str, state: str | None, allowed: str) -> FailedPrecondition:
    shown = state or "no state"
    return FailedPrecondition(
        f"job {job_id!r} of queue {queue!r} is {shown}; only {allowed} jobs can be used here",
        reason="JOB_STATE",
        metadata={"queue": queue, "job_id": job_id, "state": state or ""},
    )


def _checked_states(states: Sequence[str], page_size: int) -> list[str]:
    """The distinct states a listing walks, in order (all when none are given), once the request is valid."""
    wanted = list(dict.fromkeys(states)) or list(JOB_STATES)
    unknown = [s for s in wanted if s not in _SOURCES]
    if unknown:
        raise InvalidArgument("states", f"unknown state(s) {unknown}; use {', '.join(JOB_STATES)}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgument("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return wanted


@dataclass(slots=True)
class _Position:
    """Where a listing continues: state index, then the last examined member and its place."""

    index: int = 0
    offset: int = 0  # list index (or zset rank) just after the last examined member
    member: str | None = None
    score: float | None = None

    def encode(self) -> str:
        raw = json.dumps([1, self.index, self.offset, self.member, self.score], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, states: int) -> _Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            version, index, offset, member, score = json.loads(raw)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("page_token", "not a page token from this listing") from None
        valid = (
            version == 1
            and isinstance(index, int)
            and 0 <= index < states
            and isinstance(offset, int)
            and offset >= 0
            and (member is None or isinstance(member, str))
            and (score is None or (isinstance(score, (int, float)) and not isinstance(score, bool)))
        )
        if not valid:
            raise InvalidArgument("page_token", "not a page token from this listing")
        return cls(index, offset, member, None if score is None else float(score))


class BullMQJobs:
    """`JobActions` for BullMQ queues under `prefix`, over the caller's Redis client (never closed here).

    `classifier` files failure reasons into categories; `max_examined` bounds the jobs a filtered
    listing looks at per call.
    """

    def __init__(
        self,
        redis: RedisClient,
        prefix: str = "bull",
        classifier: FailureClassifier | None = None,
        *,
        max_examined: int = MAX_EXAMINED,
    ) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        if max_examined < 1:
            raise ValueError("max_examined must be at least 1")
        self.max_examined = max_examined
        self.redis = redis
        self.prefix = prefix
        self.classifier = classifier or FailureClassifier()
        self._queues: dict[str, Any] = {}
        self._cut = redis.register_script(_CUT_SCRIPT)
        self.search = BullMQSearch(self)
        self._release = redis.register_script(_RELEASE_SCRIPT)

    def key(self, queue: str, kind: str) -> str:
        """The Redis key of one of a queue's structures (`wait`, `meta`, a job id, ...)."""
        return f"{self.prefix}:{queue}:{kind}"

    def _bull(self, queue: str) -> Any:
        found = self._queues.get(queue)
        if found is None:
            # Given a client instance, bullmq uses it as is (same pool, same decode setting); it must
            # not close it, though: the caller owns it.
            found = Queue(queue, {"connection": self.redis, "prefix": self.prefix})
            found.backend.owns_connection = False
            self._queues[queue] = found
        return found

    async def close(self) -> None:
        """Forget the cached bullmq queues (they hold nothing of their own: the client is the caller's)."""
        queues = list(self._queues.values())
        self._queues.clear()
        for queue in queues:
            await queue.close()

    # -- existence and state -----------------------------------------------------------------------

    async def exists(self, queue: str) -> bool:
        """True when the queue has a meta hash or an id counter (what discovery looks for)."""
        return int(await self.redis.exists(self.key(queue, "meta"), self.key(queue, "id"))) > 0

    async def _require(self, queue: str) -> None:
        if not await self.exists(queue):
            raise _not_found_queue(queue)

    def _queue_state_commands(self, pipe: Any, queue: str, job_id: str) -> None:
        """Queue the commands `_state_from` reads: where the job sits, checked like BullMQ's getState."""
        for state in _STATE_ORDER:
            suffix, kind = _SOURCES[state]
            if kind == "zset":
                pipe.zscore(self.key(queue, suffix), job_id)
            else:
                pipe.execute_command("LPOS", self.key(queue, suffix), job_id)

    @staticmethod
    def _state_from(replies: Sequence[Any]) -> str | None:
        # A state key of another type (an error reply) holds no job.
        for state, reply in zip(_STATE_ORDER, replies, strict=True):
            if reply is not None and not isinstance(reply, Exception):
                return state
        return None

    async def job_state(self, queue: str, job_id: str) -> str | None:
        """The job's state, or None when its hash exists but it is in none (being moved, or orphaned)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.key(queue, "meta"), self.key(queue, "id"))
            pipe.exists(self.key(queue, job_id))
            self._queue_state_commands(pipe, queue, job_id)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not replies[0]:
            raise _not_found_queue(queue)
        if not replies[1]:
            raise _not_found_job(queue, job_id)
        return self._state_from(replies[2:])

    # -- queue actions -----------------------------------------------------------------------------

    async def pause(self, queue: str) -> bool:
        """Pause the queue (workers finish their current jobs); True if it was running."""
        await self._require(queue)
        if await self.redis.hexists(self.key(queue, "meta"), "paused"):
            return False
        await self._bull(queue).pause()
        return True

    async def resume(self, queue: str) -> bool:
        """Resume the queue; True if it was paused."""
        await self._require(queue)
        if not await self.redis.hexists(self.key(queue, "meta"), "paused"):
            return False
        bull = self._bull(queue)
        # A pre-v5 paused list is moved back 7,000 jobs per call; the script says how many are left.
        while int(await bull.resume() or 0) > 0:
            pass
        return True

    async def retry_failed(self, queue: str, limit: int | None) -> int:
        """Move failed jobs back to waiting: all of them, or the newest `limit`; the exact number moved."""
        return await self._requeue(queue, "failed", limit)

    async def promote_delayed(self, queue: str, limit: int | None) -> int:
        """Move delayed jobs to waiting now: all, or the first `limit` in listing order; the number moved."""
        return await self._requeue(queue, "delayed", limit)

    async def _requeue(self, queue: str, state: str, limit: int | None) -> int:
        if limit is not None and limit < 0:
            raise InvalidArgument("limit", "must not be negative")
        await self._require(queue)
        if limit == 0:
            return 0
        key = self.key(queue, state)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(key)
            pipe.zrevrange(key, 0, 0, withscores=True)
            size, top = await pipe.execute()
        if not top:
            return 0
        # Only jobs there when the call started: a retried job failing again scores above the ceiling,
        # and the attempt budget stops the loop whatever else moves in.
        ceiling = top[0][1]
        target = int(size) if limit is None else min(limit, int(size))
        budget = int(size)
        moved = attempted = 0
        while moved < target and attempted < budget:
            wanted = min(_CHUNK, target - moved, budget - attempted)
            ids = [
                text(m) for m in await self.redis.zrevrangebyscore(key, ceiling, "-inf", start=0, num=wanted)
            ]
            if not ids:
                break
            attempted += len(ids)
            if state == "failed":
                moved += await self._reprocess(queue, ids, "failed")
            else:
                moved += await self._promote(queue, ids)
        return moved

    async def _reprocess(self, queue: str, ids: Sequence[str], state: str) -> int:
        """Run BullMQ's reprocessJob (what Job.retry runs) for each id; how many it moved."""
        bull = self._bull(queue)
        keys = bull.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(self.key(queue, job_id), "opts")
            opts = await pipe.execute()
        script = bull.scripts.commands["reprocessJob"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, raw_opts in zip(ids, opts, strict=True):
                lifo = bool(_json_object(raw_opts).get("lifo"))
                await queue_script(
                    pipe,
                    script,
                    [
                        self.key(queue, job_id),
                        keys["events"],
                        keys[state],
                        keys["wait"],
                        keys["meta"],
                        keys["active"],
                        keys["marker"],
                        keys["prioritized"],
                        keys["pc"],
                    ],
                    [
                        job_id,
                        ("R" if lifo else "L") + "PUSH",
                        "failedReason" if state == "failed" else "returnvalue",
                        state,
                        "0",
                        "0",
                    ],
                )
            results = await pipe.execute(raise_on_error=True)
        return sum(1 for r in results if integer(r) == 1)

    async def _promote(self, queue: str, ids: Sequence[str]) -> int:
        """Run BullMQ's promote script for each id; how many it moved."""
        bull = self._bull(queue)
        scripts = bull.scripts
        script = scripts.commands["promote"]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                keys, args = scripts.promoteArgs(job_id)
                await queue_script(pipe, script, keys, args)
            results = await pipe.execute(raise_on_error=True)
        return sum(1 for r in results if integer(r) == 0)

    async def drain(self, queue: str, include_delayed: bool) -> int:
        """Remove waiting and prioritized jobs (and delayed ones when asked); the number removed.

        Counted inside the same MULTI as BullMQ's drain script, so jobs added or taken by workers
        meanwhile do not skew it; delayed jobs a job scheduler owns are kept (and not counted).
        """
        await self._require(queue)
        bull = self._bull(queue)
        keys = bull.keys
        lists = [keys["wait"], keys["paused"]]
        sets = [keys["prioritized"]] + ([keys["delayed"]] if include_delayed else [])

        def count(pipe: Any) -> None:
            for name in lists:
                pipe.llen(name)
            for name in sets:
                pipe.zcard(name)

        async with self.redis.pipeline(transaction=True) as pipe:
            count(pipe)
            await queue_script(
                pipe,
                bull.scripts.commands["drain"],
                bull.scripts.getKeys(["wait", "paused", "delayed", "prioritized", "repeat"]),
                [keys[""], "1" if include_delayed else "0"],
            )
            count(pipe)
            replies = await pipe.execute()
        n = len(lists) + len(sets)
        return sum(int(v) for v in replies[:n]) - sum(int(v) for v in replies[n + 1 :])

    async def clean(self, queue: str, state: str, grace_ms: int, limit: int) -> list[str]:
        """Remove jobs of `state` older than `grace_ms` (at most `limit`; 0 = no limit); the removed ids."""
        kind = "wait" if state == "waiting" else state
        if kind not in CLEANABLE_STATES:
            raise InvalidArgument("state", f"must be one of {', '.join(CLEANABLE_STATES)}")
        if grace_ms < 0:
            raise InvalidArgument("grace_ms", "must not be negative")
        if limit < 0:
            raise InvalidArgument("limit", "must not be negative")
        await self._require(queue)
        removed = await self._bull(queue).clean(grace_ms, limit, kind)
        return [text(job_id) for job_id in removed or []]

    async def add_job(  # noqa: PLR0917 - the service passes its request fields in this order
        self, queue: str, name: str, data_json: str, delay_ms: int, priority: int, attempts: int
    ) -> JobSummary:
        """Add a job (JSON data; delay, priority and attempts when > 0); its summary as stored."""
        try:
            data = json.loads(data_json) if data_json.strip() else {}
        except ValueError as exc:
            raise InvalidArgument("data", f"not valid JSON: {exc}") from None
        if delay_ms < 0:
            raise InvalidArgument("delay_ms", "must not be negative")
        if not 0 <= priority <= _MAX_PRIORITY:
            raise InvalidArgument("priority", f"must be between 0 and {_MAX_PRIORITY}")
        if attempts < 0:
            raise InvalidArgument("attempts", "must not be negative")
        await self._require(queue)
        opts: dict[str, Any] = {}
        if delay_ms:
            opts["delay"] = delay_ms
        if priority:
            opts["priority"] = priority
        if attempts:
            opts["attempts"] = attempts
        job = await self._bull(queue).add(name, data, opts)
        job_id = text(job.id)
        summary = await self._lookup(queue, job_id)
        if summary is None:  # removed at once (a worker finished it with removeOnComplete)
            raise _not_found_job(queue, job_id)
        return summary

    # -- job actions -------------------------------------------------------------------------------

    async def retry_job(self, queue: str, job_id: str) -> str:
        """Move a failed or completed job back to waiting; the state it left."""
        state = await self.job_state(queue, job_id)
        if state is None or state not in ("failed", "completed"):
            raise _not_in_state(queue, job_id, state, "failed or completed")
        if not await self._reprocess(queue, [job_id], state):
            raise _not_in_state(queue, job_id, await self._state_or_none(queue, job_id), state)
        return state

    async def promote_job(self, queue: str, job_id: str) -> str:
        """Move a delayed job to waiting now; the state it left (`delayed`)."""
        state = await self.job_state(queue, job_id)
        if state is None or state != "delayed":
            raise _not_in_state(queue, job_id, state, "delayed")
        if not await self._promote(queue, [job_id]):
            raise _not_in_state(queue, job_id, await self._state_or_none(queue, job_id), "delayed")
        return state

    async def remove_job(self, queue: str, job_id: str) -> str:
        """Remove a job and its children; the state it was in. Active or locked jobs raise JobIsActive."""
        state = await self.job_state(queue, job_id)
        if state == "active":
            raise JobIsActive(queue, job_id)
        # BullMQ's removeJob refuses a locked job itself (0), so a job that turned active meanwhile is safe.
        result = integer(await self._bull(queue).remove(job_id))
        if result == 0:
            raise JobIsActive(queue, job_id)
        if result == -8:
            raise FailedPrecondition(
                f"job {job_id!r} is the next run of a job scheduler; remove the scheduler instead",
                reason="JOB_SCHEDULED",
                metadata={"queue": queue, "job_id": job_id},
            )
        return state or "unknown"

    async def _state_or_none(self, queue: str, job_id: str) -> str | None:
        try:
            return await self.job_state(queue, job_id)
        except NotFound:
            return None

    # -- listing -----------------------------------------------------------------------------------

    async def list_jobs(  # noqa: PLR0917 - the service passes its request fields in this order
        self,
        queue: str,
        states: Sequence[str],
        page_size: int,
        cursor: str | None,
        job_id: str = "",
        name_prefix: str = "",
        category: str = "",
    ) -> JobPage:
        """A page of jobs in `states` (in the order given, newest first within each), filtered.

        `job_id` looks up one job (returned when it is in one of `states`). `name_prefix` and
        `category` scan the states' members in chunks, examining at most `max_examined` jobs per call.
        An unfiltered page costs two round trips: counts with the first range, then one HMGET each.
        """
        wanted = _checked_states(states, page_size)
        position = _Position.decode(cursor, len(wanted)) if cursor else _Position()
        filtering = bool(name_prefix or category)

        if job_id:
            return await self._find(queue, wanted, job_id, name_prefix, category)

        first = min(_CHUNK, self.max_examined) if filtering else page_size
        total, prefetched, broken = await self._count_and_prefetch(queue, wanted, position, first)

        rows: list[JobSummary] = []
        # A job that moves on while the page is read (waiting, then active) is met again in a later
        # state's list: a page shows it once.
        listed: set[str] = set()
        examined = 0
        while position.index < len(wanted) and len(rows) < page_size and examined < self.max_examined:
            if wanted[position.index] in broken:
                # Its key is of another type (the queue is DEGRADED and says so): list the other states.
                position, prefetched = _Position(position.index + 1), None
                continue
            source = self._source(queue, wanted[position.index])
            if prefetched is not None:
                want = first
                members, exhausted = prefetched, len(prefetched) < want
                prefetched = None
            else:
                want = page_size - len(rows) if not filtering else min(_CHUNK, self.max_examined - examined)
                members, exhausted = await self._read_range(source, position, want)
            fields = await self._summary_values(queue, members)
            full = False
            for (member, score), values in zip(members, fields, strict=True):
                examined += 1
                position.offset += 1
                position.member, position.score = member, score
                if member.startswith("0:"):  # pre-v5 BullMQ's marker entries in the wait list
                    continue
                if member in listed:
                    continue
                summary = self._summary(member, wanted[position.index], values)
                if summary is None or not self._matches(summary, name_prefix, category):
                    continue
                listed.add(member)
                rows.append(summary)
                if len(rows) >= page_size:
                    full = True
                    break
            if exhausted and not full:
                position = _Position(position.index + 1)
        next_cursor = position.encode() if position.index < len(wanted) else ""
        rows = await self._mark_stalled(queue, rows)
        return JobPage(jobs=rows, next_cursor=next_cursor, total=total, examined=examined)

    async def _count_and_prefetch(
        self, queue: str, states: Sequence[str], position: _Position, count: int
    ) -> tuple[int, list[tuple[str, float | None]] | None, set[str]]:
        """The jobs in `states`, up to `count` members from `position` unless it must be found first,
        and the states whose key is of another type (counted as none)."""
        # The first read rides along with the counts unless the cursor needs relocating first.
        prefetch = position.member is None
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.key(queue, "meta"), self.key(queue, "id"))
            self._count_commands(pipe, queue, states)
            if prefetch:
                self._range_command(pipe, self._source(queue, states[position.index]), position, count)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not replies[0]:
            raise _not_found_queue(queue)
        counts = replies[1 : 1 + len(states)]
        broken = {state for state, n in zip(states, counts, strict=True) if isinstance(n, Exception)}
        total = sum(_count(n) for n in counts)
        first = replies[-1] if prefetch and not isinstance(replies[-1], Exception) else []
        return total, _pairs(first) if prefetch else None, broken

    async def _summary_values(self, queue: str, members: Sequence[tuple[str, float | None]]) -> list[Any]:
        """The summary fields of each member's job hash, in one round trip (none for no members)."""
        if not members:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in members:
                pipe.execute_command("HMGET", self.key(queue, member), *_SUMMARY_FIELDS)
            # A job key of another type is that job's problem alone (listed with what is known of it).
            return wrong_types_kept(await pipe.execute(raise_on_error=False))

    def _source(self, queue: str, state: str) -> tuple[str, str]:
        suffix, kind = _SOURCES[state]
        return self.key(queue, suffix), kind

    def _count_commands(self, pipe: Any, queue: str, states: Sequence[str]) -> None:
        for state in states:
            key, kind = self._source(queue, state)
            if kind == "zset":
                pipe.zcard(key)
            else:
                pipe.llen(key)

    @staticmethod
    def _range_command(
        pipe: Any, source: tuple[str, str], position: _Position, count: int, skip: int = 0
    ) -> None:
        """Queue the read of up to `count` members from `position`."""
        key, kind = source
        if kind == "list":
            pipe.lrange(key, position.offset, position.offset + count - 1)
        elif position.member is None or position.score is None:
            pipe.zrevrange(key, position.offset, position.offset + count - 1, withscores=True)
        else:
            # Inclusive of the last score: the members tied with it that were read already are dropped
            # by `_after` (ties come in reverse member order), so removals above never shift a page.
            pipe.zrevrangebyscore(key, repr(position.score), "-inf", start=skip, num=count, withscores=True)

    async def _read_range(
        self, source: tuple[str, str], position: _Position, count: int
    ) -> tuple[list[tuple[str, float | None]], bool]:
        """Up to `count` members after `position`, and whether the state has no more after them."""
        key, kind = source
        if kind == "list" and position.member is not None:
            # Lists change at both ends: find the last member again (bounded scan), else trust the index.
            found = await self.redis.lpos(key, position.member, maxlen=position.offset + 10_000)
            if isinstance(found, int):
                position.offset = found + 1
        members: list[tuple[str, float | None]] = []
        skip = 0
        while True:
            async with self.redis.pipeline(transaction=False) as pipe:
                self._range_command(pipe, source, position, count, skip)
                (reply,) = await pipe.execute()
            batch = _pairs(reply)
            members += _after(position, batch, kind)
            skip += len(batch)
            exhausted = len(batch) < count
            # Only a zset read from a score can return nothing new with more behind (a long run of ties).
            if members or exhausted or kind == "list" or position.member is None:
                return members, exhausted

    def _summary(self, job_id: str, state: str, values: Sequence[Any] | Exception) -> JobSummary | None:
        """The summary of a job from its HMGET reply; None when its hash is gone."""
        if isinstance(values, Exception):
            values = [None] * len(_SUMMARY_FIELDS)  # not a hash: nothing but its id and state is known
        elif values[0] is None and values[1] is None:
            return None  # the hash is gone (removed between the range read and this one)
        return self._summary_of(job_id, state, values)

    def _summary_of(self, job_id: str, state: str, values: Sequence[Any]) -> JobSummary:
        (
            name,
            timestamp,
            processed,
            finished,
            atm,
            old_atm,
            reason,
            opts,
            delay,
            priority,
            deid,
            stc,
            old_stc,
        ) = values[: len(_SUMMARY_FIELDS)]
        processed_ms = epoch_ms(processed)
        finished_ms = epoch_ms(finished)
        failed = text(reason)
        attempts = integer(_json_object(opts).get("attempts")) or 0
        duration = (
            finished_ms - processed_ms if finished_ms is not None and processed_ms is not None else None
        )
        return JobSummary(
            id=job_id,
            name=text(name),
            state=state,
            attempts_made=integer(atm) or integer(old_atm) or 0,
            max_attempts=max(attempts, 1),
            created_ms=epoch_ms(timestamp),
            processed_ms=processed_ms,
            finished_ms=finished_ms,
            duration_ms=duration if duration is not None and duration >= 0 else None,
            delay_ms=integer(delay) or 0,
            priority=integer(priority) or 0,
            failed_reason=_first_line(failed),
            failure_category=self.classifier.classify(failed) if failed else "",
            deduplication_id=text(deid),
            stalled_count=integer(stc) or integer(old_stc) or 0,
        )

    async def _mark_stalled(self, queue: str, rows: list[JobSummary]) -> list[JobSummary]:
        """Flag the active rows whose lock is gone (one round trip, only when some row is active).

        BullMQ sets the lock in the same script that makes a job active, so an active job without one
        has outlived its lock: its worker died or blocked its event loop past the lock duration.
        """
        active = [i for i, row in enumerate(rows) if row.state == "active"]
        if not active:
            return rows
        async with self.redis.pipeline(transaction=False) as pipe:
            for i in active:
                pipe.exists(self.key(queue, rows[i].id) + ":lock")
            held = await pipe.execute(raise_on_error=False)
        marked = list(rows)
        for i, reply in zip(active, held, strict=True):
            if reply == 0:
                marked[i] = replace(rows[i], stalled_suspected=True)
        return marked

    @staticmethod
    def _matches(summary: JobSummary, name_prefix: str, category: str) -> bool:
        if name_prefix and not summary.name.startswith(name_prefix):
            return False
        return not category or summary.failure_category == category

    async def _find(
        self, queue: str, states: Sequence[str], job_id: str, name_prefix: str, category: str
    ) -> JobPage:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.key(queue, "meta"), self.key(queue, "id"))
            self._count_commands(pipe, queue, states)
            pipe.execute_command("HMGET", self.key(queue, job_id), *_SUMMARY_FIELDS)
            self._queue_state_commands(pipe, queue, job_id)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not replies[0]:
            raise _not_found_queue(queue)
        total = sum(_count(v) for v in replies[1 : 1 + len(states)])
        values = replies[1 + len(states)]
        state = self._state_from(replies[2 + len(states) :])
        rows: list[JobSummary] = []
        if state in states:
            assert state is not None
            summary = self._summary(job_id, state, values)
            if summary is not None and self._matches(summary, name_prefix, category):
                rows.append(summary)
        return JobPage(jobs=await self._mark_stalled(queue, rows), next_cursor="", total=total, examined=1)

    async def deduplicated_job(self, queue: str, deduplication_id: str) -> tuple[JobSummary, int | None]:
        """The job holding a deduplication id (`de:<id>`) and the ms until the id expires (None: held
        until the job finishes); NotFound when the id is free or its job is gone."""
        await self._require(queue)
        key = self.key(queue, "de:" + deduplication_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            held, ttl = wrong_types_kept(await pipe.execute(raise_on_error=False))
        summary = None
        if held is not None and not isinstance(held, Exception):
            summary = await self._lookup(queue, text(held))
        if summary is None:
            raise NotFound(
                f"no job of queue {queue!r} holds deduplication id {deduplication_id!r}",
                reason="DEDUPLICATION_ID_NOT_FOUND",
                metadata={"queue": queue, "deduplication_id": deduplication_id},
            )
        (summary,) = await self._mark_stalled(queue, [summary])
        expires = integer(ttl)
        return summary, expires if expires is not None and expires > 0 else None

    async def release_deduplication(self, queue: str, job_id: str) -> str:
        """Free the deduplication id the job holds, so the next job added with it is kept; the id.

        FailedPrecondition when the job has no deduplication id (NO_DEDUPLICATION_ID) or no longer
        holds it (DEDUPLICATION_NOT_HELD: it expired, was freed, or the job finished and BullMQ freed it).
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.key(queue, "meta"), self.key(queue, "id"))
            pipe.exists(self.key(queue, job_id))
            pipe.hget(self.key(queue, job_id), "deid")
            exists, job_exists, deid = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not exists:
            raise _not_found_queue(queue)
        if not job_exists:
            raise _not_found_job(queue, job_id)
        deduplication_id = "" if isinstance(deid, Exception) else text(deid)
        metadata = {"queue": queue, "job_id": job_id, "deduplication_id": deduplication_id}
        if not deduplication_id:
            raise FailedPrecondition(
                f"job {job_id!r} of queue {queue!r} was added without a deduplication id",
                reason="NO_DEDUPLICATION_ID",
                metadata=metadata,
            )
        key = self.key(queue, "de:" + deduplication_id)
        if not integer(await self._release(keys=[key], args=[job_id])):
            raise FailedPrecondition(
                f"job {job_id!r} no longer holds deduplication id {deduplication_id!r}",
                reason="DEDUPLICATION_NOT_HELD",
                metadata=metadata,
            )
        return deduplication_id

    async def _lookup(self, queue: str, job_id: str) -> JobSummary | None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.execute_command("HMGET", self.key(queue, job_id), *_SUMMARY_FIELDS)
            self._queue_state_commands(pipe, queue, job_id)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        return self._summary(job_id, self._state_from(replies[1:]) or "unknown", replies[0])

    async def lookup(self, queue: str, job_id: str) -> JobSummary | None:
        """A job's summary in whatever state it is, or None when its hash is gone."""
        return await self._lookup(queue, job_id)

    async def summaries(self, items: Sequence[tuple[str, str, str]]) -> list[JobSummary | None]:
        """Summaries of (queue, job id, state) in one round trip; None for a job gone meanwhile."""
        if not items:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for queue, job_id, _ in items:
                pipe.execute_command("HMGET", self.key(queue, job_id), *_SUMMARY_FIELDS)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        return [
            self._summary(job_id, state, values)
            for (_, job_id, state), values in zip(items, replies, strict=True)
        ]

    async def search_by_id(self, queues: Sequence[str], states: Sequence[str], job_id: str) -> SearchPage:
        """The job with this id in each of `queues` (see `BullMQSearch.by_id`)."""
        return await self.search.by_id(queues, states, job_id)

    async def search_scan(self, query: SearchQuery) -> SearchPage:
        """A bounded, resumable scan (see `BullMQSearch.scan`)."""
        return await self.search.scan(query)

    def source(self, queue: str, state: str) -> tuple[str, str]:
        """The key holding a state's jobs and its type (`list` or `zset`)."""
        return self._source(queue, state)

    def count_commands(self, pipe: Any, queue: str, states: Sequence[str]) -> None:
        """Queue the count of each state's jobs in `pipe`."""
        self._count_commands(pipe, queue, states)

    async def job_data(self, queue: str, job_ids: Sequence[str], max_bytes: int) -> list[tuple[str, int]]:
        """Each job's data (cut to `max_bytes` inside Redis) and its full size, in two round trips."""
        if not job_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hstrlen(self.key(queue, job_id), "data")
            sizes = [_count(n) for n in wrong_types_kept(await pipe.execute(raise_on_error=False))]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, size in zip(job_ids, sizes, strict=True):
                if size <= max_bytes:
                    pipe.hget(self.key(queue, job_id), "data")
                else:
                    await queue_script(pipe, self._cut, [self.key(queue, job_id)], ["data", max_bytes])
            values = wrong_types_kept(await pipe.execute(raise_on_error=False))
        return [(text(_value(v)), size) for v, size in zip(values, sizes, strict=True)]

    async def obliterate(self, queue: str, force: bool, batch: int = OBLITERATE_BATCH) -> int:
        """Destroy a queue with BullMQ's obliterate script, `batch` jobs per call; the calls it took.

        Refused (QUEUE_HAS_ACTIVE_JOBS) while jobs are active unless `force`; BullMQ's script checks
        again itself, so a job that turns active meanwhile still stops it."""
        await self._require(queue)
        active = int(await self.redis.llen(self.key(queue, "active")))
        if active and not force:
            raise FailedPrecondition(
                f"queue {queue!r} has {active} active job(s); obliterate it with force, or wait for them",
                reason="QUEUE_HAS_ACTIVE_JOBS",
                metadata={"queue": queue, "active": str(active)},
            )
        bull = self._bull(queue)
        # BullMQ's own order: pause first (its script refuses a running queue), then remove in batches.
        await bull.pause()
        calls = 0
        while True:
            calls += 1
            try:
                left = await bull.backend.obliterate(batch, force)
            except Exception as exc:
                if "active jobs" in str(exc):
                    raise FailedPrecondition(
                        f"queue {queue!r} has active jobs; obliterate it with force, or wait for them",
                        reason="QUEUE_HAS_ACTIVE_JOBS",
                        metadata={"queue": queue},
                    ) from exc
                raise
            if not left or left == "0":
                return calls

    # -- one job in full ---------------------------------------------------------------------------

    async def get_job(self, queue: str, job_id: str, max_bytes: int) -> JobDetail:
        """One job in full; data and return value cut (inside Redis) to `max_bytes` each.

        Whatever is stored, the job is shown: text that is not UTF-8 is decoded with replacement
        characters, times that are not times are left unknown, and each such field gets a `note` entry
        in the timeline (with the raw byte length of text fields), as does a job or logs key of
        another type.
        """
        if max_bytes < 0:
            raise InvalidArgument("max_bytes", "must not be negative")
        job_key = self.key(queue, job_id)
        logs_key = job_key + ":logs"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.key(queue, "meta"), self.key(queue, "id"))
            pipe.execute_command("HMGET", job_key, *_DETAIL_FIELDS)
            pipe.execute_command("HSTRLEN", job_key, "data")
            pipe.execute_command("HSTRLEN", job_key, "returnvalue")
            pipe.exists(job_key)
            pipe.lrange(logs_key, -_LOG_LINES, -1)
            pipe.llen(logs_key)
            self._queue_state_commands(pipe, queue, job_id)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        exists, values, data_bytes, rv_bytes, job_exists, logs, logs_total = replies[:7]
        if not exists:
            raise _not_found_queue(queue)
        if not job_exists:
            raise _not_found_job(queue, job_id)
        state = self._state_from(replies[7:]) or "unknown"
        checked: list[tuple[str, Kind, Any]] = [(job_key, "hash", values), (logs_key, "list", logs)]
        failures = [(key, kind, reply) for key, kind, reply in checked if isinstance(reply, Exception)]
        problems = list((await key_problems(self.redis, failures)).values()) if failures else []
        if isinstance(values, Exception):
            values, data_bytes, rv_bytes = [None] * len(_DETAIL_FIELDS), 0, 0
        if isinstance(logs, Exception):
            logs, logs_total = [], 0
        data_bytes, rv_bytes = int(data_bytes), int(rv_bytes)
        data, return_value = await self._payloads(job_key, data_bytes, rv_bytes, max_bytes)

        fields = dict(zip(_DETAIL_FIELDS, values, strict=True))
        (summary,) = await self._mark_stalled(
            queue, [self._summary_of(job_id, state, values[: len(_SUMMARY_FIELDS)])]
        )
        notes = [
            *problems,
            *_unreadable(fields, {"data": (data, data_bytes), "returnvalue": (return_value, rv_bytes)}),
        ]
        if not all(is_utf8(line) for line in logs):
            notes.append(
                "logs: some lines are not valid UTF-8 and are shown with U+FFFD replacement characters"
            )
        return JobDetail(
            summary=summary,
            data=text(data),
            data_bytes=data_bytes,
            data_truncated=data_bytes > max_bytes,
            return_value=text(return_value),
            return_value_bytes=rv_bytes,
            return_value_truncated=rv_bytes > max_bytes,
            options_json=text(fields["opts"]) or "{}",
            progress_json=text(fields["progress"]) or "0",
            stacktrace=_string_list(fields["stacktrace"]),
            logs=[text(line) for line in logs],
            logs_total=int(logs_total),
            processed_by=text(fields["pb"]),
            failed_reason_full=text(fields["failedReason"]),
            parent_key=text(fields["parentKey"]),
            timeline=_timeline(summary, integer(fields["ats"]), notes),
        )

    async def _payloads(
        self, job_key: str, data_bytes: int, rv_bytes: int, max_bytes: int
    ) -> tuple[Any, Any]:
        """The job's data and return value, each cut to `max_bytes` inside Redis when longer."""
        if not data_bytes and not rv_bytes:
            return None, None
        async with self.redis.pipeline(transaction=False) as pipe:
            for field, size in (("data", data_bytes), ("returnvalue", rv_bytes)):
                if size <= max_bytes:
                    pipe.hget(job_key, field)
                else:
                    await queue_script(pipe, self._cut, [job_key], [field, max_bytes])
            data, return_value = wrong_types_kept(await pipe.execute(raise_on_error=False))
        return _value(data), _value(return_value)


def _count(reply: Any) -> int:
    """A count reply; 0 for a key of another type."""
    return 0 if isinstance(reply, Exception) else int(reply)


def _value(reply: Any) -> Any:
    return None if isinstance(reply, Exception) else reply


def _unreadable(fields: dict[str, Any], payloads: dict[str, tuple[Any, int]]) -> list[str]:
    """Notes on the fields of a job hash that do not read as what BullMQ writes there."""
    notes = []
    for name in _TIME_FIELDS:
        raw = fields[name]
        if raw is not None and epoch_ms(raw) is None:
            notes.append(f"{name} {text(raw)!r} is not a time: shown as unknown")
    texts = {name: (fields[name], None) for name in _TEXT_FIELDS} | payloads
    for name, (raw, stored) in texts.items():
        if not is_utf8(raw):
            size = stored if stored is not None else len(raw)
            notes.append(
                f"{name} is not valid UTF-8 ({size} bytes): shown with U+FFFD replacement characters"
            )
    return notes


def _pairs(reply: Any) -> list[tuple[str, float | None]]:
    pairs: list[tuple[str, float | None]] = []
    for item in reply or []:
        if isinstance(item, (list, tuple)):
            pairs.append((text(item[0]), float(item[1])))
        else:
            pairs.append((text(item), None))
    return pairs


def _after(
    position: _Position, pairs: list[tuple[str, float | None]], kind: str
) -> list[tuple[str, float | None]]:
    """Drop zset members at or before the cursor (same score, member not below the last one's)."""
    if kind != "zset" or position.member is None or position.score is None:
        return pairs
    last = position.member.encode()
    return [(m, s) for m, s in pairs if not (s is not None and s >= position.score and m.encode() >= last)]


def _json_object(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(text(raw))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _string_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    try:
        value = json.loads(text(raw))
    except ValueError:
        return [text(raw)]
    if isinstance(value, list):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return [text(raw)]


def _timeline(
    summary: JobSummary, attempts_started: int | None, notes: Sequence[str] = ()
) -> list[TimelineEntry]:
    """The job's steps, oldest first (those whose time is unknown left out), then the notes."""
    entries = []
    if summary.created_ms is not None:
        entries.append(TimelineEntry("created", summary.created_ms))
        if summary.delay_ms:
            entries.append(TimelineEntry("delayed_until", summary.created_ms + summary.delay_ms))
    if summary.processed_ms is not None:
        attempt = attempts_started or max(summary.attempts_made, 1)
        entries.append(
            TimelineEntry("processed", summary.processed_ms, f"attempt {attempt} of {summary.max_attempts}")
        )
    if summary.finished_ms is not None:
        if summary.state == "failed":
            detail = f"failed: {summary.failed_reason}"
        elif summary.state == "completed":
            detail = "completed"
        else:  # an earlier attempt that failed and is being retried
            detail = f"attempt failed: {summary.failed_reason}" if summary.failed_reason else "attempt ended"
        entries.append(TimelineEntry("finished", summary.finished_ms, detail))
    entries.sort(key=lambda e: e.time_ms or 0)
    return entries + [TimelineEntry("note", None, note) for note in notes]
