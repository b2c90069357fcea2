"""Searching BullMQ queues without blocking Redis: a job id in every queue at once, or a resumable scan.

A scan walks queue by queue and state by state in windows of `batch` members (LRANGE / ZREVRANGE by
index). One Lua call per window reads each job's `name`, `data` and `failedReason` and matches them
inside Redis, so a megabyte payload never crosses the wire and each call holds Redis for one window
only. A search call stops at a budget of jobs examined or of time spent, or when its page is full, and
its cursor says where the next call resumes. Positions are indexes: a job that moves between states
while a search runs may be missed or met twice, which a search (unlike a listing) accepts.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, NotFound
from ..jobs import SearchHit, SearchPage, SearchQuery
from ..replies import text
from .problems import wrong_types_kept

if TYPE_CHECKING:
    from .jobs import BullMQJobs

# KEYS[1]: a state's key. ARGV: job key prefix, "list" | "zset", start, count, name prefix, text
# (lower-case), and the text as JSON escapes it with \uXXXX (data written by python's json.dumps).
# Returns {members read, index, id, what matched, ...} for the matching jobs.
_SCAN_SCRIPT = """
local ids
local start = tonumber(ARGV[3])
local stop = start + tonumber(ARGV[4]) - 1
if ARGV[2] == "list" then
  ids = redis.call("LRANGE", KEYS[1], start, stop)
else
  ids = redis.call("ZREVRANGE", KEYS[1], start, stop)
end
local prefix, needle, escaped = ARGV[5], ARGV[6], ARGV[7]
local out = {#ids}
for i, id in ipairs(ids) do
  local v = redis.pcall("HMGET", ARGV[1] .. id, "name", "data", "failedReason")
  if type(v) == "table" and not v.err and (v[1] or v[2]) then
    local name = v[1] or ""
    if prefix == "" or string.sub(name, 1, #prefix) == prefix then
      local matched = false
      if needle == "" then
        matched = "name"
      elseif v[2] and (string.find(string.lower(v[2]), needle, 1, true)
          or (escaped ~= needle and string.find(string.lower(v[2]), escaped, 1, true))) then
        matched = "data"
      elseif v[3] and string.find(string.lower(v[3]), needle, 1, true) then
        matched = "failed_reason"
      end
      if matched then
        table.insert(out, i - 1)
        table.insert(out, id)
        table.insert(out, matched)
      end
    end
  end
end
return out
"""

SEARCH_BATCH = 200
SEARCH_MAX_EXAMINED = 5_000
SEARCH_MAX_SECONDS = 0.25


@dataclass(slots=True)
class _Cursor:
    """Where a scan resumes. The queue is kept by name: in a search of every queue, a queue created or
    gone between two calls moves the others' places in the (sorted) list, not their names."""

    queue: int = 0
    state: int = 0
    offset: int = 0
    scanned: int = 0
    total: int = 0

    def encode(self, queues: Sequence[str]) -> str:
        raw = json.dumps([2, queues[self.queue], self.state, self.offset, self.scanned, self.total])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, queues: Sequence[str], states: int) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            version, name, *values = json.loads(raw)
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("page_token", "not a page token from this search") from None
        sound = (
            version == 2
            and isinstance(name, str)
            and len(values) == 4
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
            and values[0] < states
        )
        if not sound:
            raise InvalidArgument("page_token", "not a page token from this search")
        if name in queues:
            return cls(queues.index(name), *values)
        # The queue went away meanwhile: go on with the next one in order, from its start.
        later = [i for i, queue in enumerate(queues) if queue > name]
        return cls(later[0] if later else len(queues), 0, 0, *values[2:])


class BullMQSearch:
    """Search over the queues of a `BullMQJobs` (same Redis client, prefix and job summaries)."""

    def __init__(
        self,
        jobs: BullMQJobs,
        *,
        batch: int = SEARCH_BATCH,
        max_examined: int = SEARCH_MAX_EXAMINED,
        max_seconds: float = SEARCH_MAX_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = jobs
        self.batch = batch
        self.max_examined = max_examined
        self.max_seconds = max_seconds
        self.clock = clock
        self._scan = jobs.redis.register_script(_SCAN_SCRIPT)

    async def by_id(self, queues: Sequence[str], states: Sequence[str], job_id: str) -> SearchPage:
        """The job with this id in each of `queues` where it is in one of `states`: one round trip."""
        async with self.jobs.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(self.jobs.key(queue, job_id))
            found = await pipe.execute()
        hits = []
        for queue, present in zip(queues, found, strict=True):
            if not present:
                continue
            summary = await self.jobs.lookup(queue, job_id)
            if summary is not None and (not states or summary.state in states):
                hits.append(SearchHit(queue, summary, "id"))
        return SearchPage(hits, "", len(queues), len(queues))

    async def _total(self, queues: Sequence[str], states: Sequence[str], strict: bool) -> int:
        async with self.jobs.redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.exists(self.jobs.key(queue, "meta"), self.jobs.key(queue, "id"))
                self.jobs.count_commands(pipe, queue, states)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        total, width = 0, 1 + len(states)
        for i, queue in enumerate(queues):
            exists, *counts = replies[i * width : (i + 1) * width]
            if strict and not exists:
                raise NotFound(
                    f"queue {queue!r} does not exist", reason="QUEUE_NOT_FOUND", metadata={"queue": queue}
                )
            total += sum(0 if isinstance(n, Exception) else int(n) for n in counts)
        return total

    async def scan(self, query: SearchQuery) -> SearchPage:
        """Up to `query.page_size` matching jobs from where `query.cursor` left off (see SearchQuery)."""
        queues, states, page_size = query.queues, query.states, query.page_size
        if not queues:
            return SearchPage([], "", 0, 0)
        if query.cursor:
            at = _Cursor.decode(query.cursor, queues, len(states))
        else:
            at = _Cursor(total=await self._total(queues, states, query.strict))
        found: list[tuple[str, str, str, str]] = []  # queue, id, state, what matched
        examined = 0
        deadline = self.clock() + self.max_seconds
        lowered = query.needle.lower()
        escaped = json.dumps(lowered)[1:-1]
        while (
            at.queue < len(queues)
            and len(found) < page_size
            and examined < self.max_examined
            # At least one window per call, however slow the last one was: a search always moves on.
            and (examined == 0 or self.clock() < deadline)
        ):
            queue, state = queues[at.queue], states[at.state]
            key, kind = self.jobs.source(queue, state)
            count = min(self.batch, self.max_examined - examined)
            try:
                reply = await self._scan(
                    keys=[key],
                    args=[
                        self.jobs.key(queue, ""),
                        kind,
                        at.offset,
                        count,
                        query.name_prefix,
                        lowered,
                        escaped,
                    ],
                )
            except Exception as exc:  # a key of another type: that state's problem, not the search's
                if "WRONGTYPE" not in str(exc):
                    raise
                reply = [0]
            returned = int(reply[0])
            matches = [
                (int(reply[i]), text(reply[i + 1]), text(reply[i + 2])) for i in range(1, len(reply), 3)
            ]
            room = page_size - len(found)
            advance, state_done = returned, returned < count
            if len(matches) > room:
                # Resume just after the last hit kept, so the ones left over are met again next call.
                advance, state_done = matches[room - 1][0] + 1, False
                matches = matches[:room]
            found += [(queue, job_id, state, matched) for _, job_id, matched in matches]
            examined += advance
            at.scanned += advance
            at.offset += advance
            if state_done:
                at.state, at.offset = at.state + 1, 0
                if at.state >= len(states):
                    at.queue, at.state = at.queue + 1, 0
        summaries = await self.jobs.summaries([(q, j, s) for q, j, s, _ in found])
        hits = [
            SearchHit(q, summary, matched)
            for (q, _, _, matched), summary in zip(found, summaries, strict=True)
            if summary is not None
        ]
        next_cursor = at.encode(queues) if at.queue < len(queues) else ""
        return SearchPage(hits, next_cursor, at.scanned, max(at.total, at.scanned))
