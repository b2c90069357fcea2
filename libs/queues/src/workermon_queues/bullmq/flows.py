"""`FlowActions` over BullMQ: a job's parent and children, and a queue's job schedulers.

Layout read here (BullMQ 5.16+ and 6, from its Lua scripts):

* a child's hash has `parentKey` (the parent's job key) and `parent` (JSON `{id, queueKey}`);
* a parent keeps `<jobKey>:dependencies` (SET of pending child keys), `:processed` (HASH child key ->
  return value), `:failed` (HASH child key -> reason, children failed with `ignoreDependencyOnFailure`
  or `continueParentOnFailure`) and `:unsuccessful` (ZSET of children failed with
  `failParentOnFailure`); `getDependencyCounts` names them processed, unprocessed, ignored, failed;
* a child that fails without any of those options stays in `:dependencies`, so its parent waits in
  `waiting-children` for ever: the case `remove_pending_children` exists for;
* job schedulers: `<queue>:repeat` (ZSET scheduler id -> next run ms) and `<queue>:repeat:<id>` (HASH
  name, pattern or every, tz, limit, startDate, endDate, offset, ic, data, opts). Older repeatable
  jobs share the ZSET with members `name:id:endDate:tz:pattern` and no hash.

Children are listed by position within each kind (sorted by key, so pages are stable while the set
does not change); a parent with thousands of children is paged, never read whole into a reply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bullmq.job import optsFromJSON
from bullmq.redis_connection import loadScript
from redis.exceptions import ResponseError

from ..client import queue_script
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..flows import (
    CHILD_KINDS,
    ChildPage,
    DependencyCounts,
    JobChild,
    JobRef,
    JobScheduler,
    PendingChildrenRemoved,
    SchedulerPage,
)
from ..jobs import JobSummary
from ..replies import epoch_ms, integer, text
from .jobs import _SOURCES, _STATE_ORDER, BullMQJobs, _not_found_job, _not_found_queue, _not_in_state
from .problems import wrong_types_kept

__all__ = ["BullMQFlows"]

# Kind -> (suffix of the parent's key, Redis type).
_CHILD_KEYS: dict[str, tuple[str, str]] = {
    "pending": ("dependencies", "set"),
    "processed": ("processed", "hash"),
    "ignored": ("failed", "hash"),
    "failed": ("unsuccessful", "zset"),
}
# Options of a scheduler's template that tie a job to the schedule: a job run now is a plain job.
_SCHEDULE_OPTS = ("repeat", "jobId", "repeatJobKey", "delay", "prevMillis", "timestamp", "rjk")
_NUMBER_FIELDS = ("ic", "limit", "every", "offset")


def _count(reply: Any) -> int:
    return 0 if isinstance(reply, Exception) or reply is None else int(reply)


def _cursor(cursor: str | None, kinds: int) -> tuple[int, int]:
    """(kind index, offset) from a cursor made by `_encode`."""
    if not cursor:
        return 0, 0
    index, _, offset = cursor.partition(":")
    if not (index.isdigit() and offset.isdigit()) or int(index) >= kinds:
        raise InvalidArgument("page_token", "not a page token from this listing")
    return int(index), int(offset)


def _cut(value: str, max_bytes: int) -> tuple[str, bool]:
    raw = value.encode()
    if len(raw) <= max_bytes:
        return value, False
    return raw[:max_bytes].decode(errors="ignore"), True


class BullMQFlows:
    """`FlowActions` for the BullMQ queues a `BullMQJobs` reads (same Redis client, same prefix)."""

    def __init__(self, jobs: BullMQJobs) -> None:
        self.jobs = jobs
        self.redis = jobs.redis
        self.prefix = jobs.prefix
        # BullMQ's own flow scripts, which python bullmq ships (includes inlined) but does not register.
        self._scripts = {
            name: self.redis.register_script(loadScript(f"{name}-{keys}.lua"))
            for name, keys in (
                ("removeUnprocessedChildren", 2),
                ("removeChildDependency", 1),
            )
        }

    # -- keys ----------------------------------------------------------------------------------------

    def ref(self, key: str) -> JobRef:
        """The job a job key names: under the monitored prefix, queue and id (queue names hold no
        colon); elsewhere the id after the last colon, as BullMQ's own `getJobIdFromKey` reads it."""
        mine = self.prefix + ":"
        if key.startswith(mine):
            queue, _, job_id = key[len(mine) :].partition(":")
            return JobRef(queue, job_id, key)
        return JobRef("", key.rpartition(":")[2], key)

    @staticmethod
    def _queue_key(ref: JobRef) -> str:
        """`<prefix>:<queue>` of the job's queue, from its key."""
        return ref.key[: len(ref.key) - len(ref.job_id) - 1]

    def _state_commands(self, pipe: Any, ref: JobRef) -> None:
        base = self._queue_key(ref)
        for state in _STATE_ORDER:
            suffix, kind = _SOURCES[state]
            if kind == "zset":
                pipe.zscore(f"{base}:{suffix}", ref.job_id)
            else:
                pipe.execute_command("LPOS", f"{base}:{suffix}", ref.job_id)

    @staticmethod
    def _count_commands(pipe: Any, job_key: str) -> None:
        for suffix, kind in _CHILD_KEYS.values():
            key = f"{job_key}:{suffix}"
            {"set": pipe.scard, "hash": pipe.hlen, "zset": pipe.zcard}[kind](key)

    @staticmethod
    def _counts(replies: Sequence[Any]) -> DependencyCounts:
        return DependencyCounts(*(_count(r) for r in replies[: len(_CHILD_KEYS)]))

    # -- flows ---------------------------------------------------------------------------------------

    async def flow_of(self, queue: str, job_id: str) -> tuple[JobRef | None, DependencyCounts]:
        """The job's parent (None outside a flow, or for its root) and its children per kind."""
        job_key = self.jobs.key(queue, job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(self.jobs.key(queue, "meta"), self.jobs.key(queue, "id"))
            pipe.exists(job_key)
            pipe.execute_command("HMGET", job_key, "parentKey", "parent")
            self._count_commands(pipe, job_key)
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not replies[0]:
            raise _not_found_queue(queue)
        if not replies[1]:
            raise _not_found_job(queue, job_id)
        fields = replies[2] if not isinstance(replies[2], Exception) else [None, None]
        return self._parent(fields[0], fields[1]), self._counts(replies[3:])

    def _parent(self, parent_key: Any, parent_json: Any) -> JobRef | None:
        key = text(parent_key)
        if not key and parent_json is not None:
            try:
                parent = json.loads(text(parent_json))
                key = f"{parent['queueKey']}:{parent['id']}"
            except (ValueError, KeyError, TypeError):
                return None
        return self.ref(key) if key else None

    async def list_children(  # noqa: PLR0917 - the service passes its request fields in this order
        self,
        queue: str,
        job_id: str,
        kinds: Sequence[str],
        page_size: int,
        cursor: str | None,
        max_bytes: int,
    ) -> ChildPage:
        """A page of the job's children of `kinds` (in that order; by key within a kind), each with its
        state, name, recorded value and own child counts."""
        wanted = list(dict.fromkeys(kinds)) or list(CHILD_KINDS)
        index, offset = _cursor(cursor, len(wanted))
        parent, counts = await self.flow_of(queue, job_id)
        del parent
        job_key = self.jobs.key(queue, job_id)
        by_kind = {"pending": counts.pending, "processed": counts.processed}
        by_kind |= {"ignored": counts.ignored, "failed": counts.failed}
        total = sum(by_kind[k] for k in wanted)
        picked: list[tuple[str, str]] = []  # (kind, child key)
        while index < len(wanted) and len(picked) < page_size:
            kind = wanted[index]
            want = page_size - len(picked)
            keys = await self._child_keys(job_key, kind, offset, want)
            picked += [(kind, k) for k in keys]
            if len(keys) < want:
                index, offset = index + 1, 0
            else:
                offset += len(keys)
        if index < len(wanted) and offset >= by_kind[wanted[index]]:
            index, offset = index + 1, 0
        while index < len(wanted) and by_kind[wanted[index]] == 0:
            index += 1
        next_cursor = f"{index}:{offset}" if index < len(wanted) else ""
        children = await self._children(job_key, picked, max_bytes)
        return ChildPage(children=children, next_cursor=next_cursor, total=total)

    async def _child_keys(self, job_key: str, kind: str, offset: int, count: int) -> list[str]:
        suffix, redis_type = _CHILD_KEYS[kind]
        key = f"{job_key}:{suffix}"
        members: Any
        try:
            if redis_type == "set":
                members = await self.redis.sort(key, start=offset, num=count, alpha=True)
            elif redis_type == "zset":
                members = await self.redis.zrange(key, offset, offset + count - 1)
            else:
                members = sorted(await self.redis.hkeys(key), key=text)[offset : offset + count]
        except ResponseError as exc:  # a key of another type holds no children
            if "WRONGTYPE" in str(exc):
                return []
            raise
        return [text(m) for m in members]

    async def _children(
        self, job_key: str, picked: Sequence[tuple[str, str]], max_bytes: int
    ) -> list[JobChild]:
        if not picked:
            return []
        per = 2 + len(_STATE_ORDER) + len(_CHILD_KEYS) + 2
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, key in picked:
                ref = self.ref(key)
                pipe.exists(key)
                pipe.execute_command("HMGET", key, "name", "failedReason")
                self._state_commands(pipe, ref)
                self._count_commands(pipe, key)
                if kind in ("processed", "ignored"):
                    source = f"{job_key}:{_CHILD_KEYS[kind][0]}"
                    pipe.execute_command("HSTRLEN", source, key)
                    await queue_script(pipe, self.jobs._cut, [source], [key, max_bytes])
                else:
                    pipe.echo("0")
                    pipe.echo("")
            replies = wrong_types_kept(await pipe.execute(raise_on_error=False))
        children = []
        for n, (kind, key) in enumerate(picked):
            r = replies[n * per : (n + 1) * per]
            fields = r[1] if not isinstance(r[1], Exception) else [None, None]
            states = r[2 : 2 + len(_STATE_ORDER)]
            state = next(
                (
                    s
                    for s, v in zip(_STATE_ORDER, states, strict=True)
                    if v is not None and not isinstance(v, Exception)
                ),
                None,
            )
            counts = self._counts(r[2 + len(_STATE_ORDER) :])
            size, value = _count(r[-2]), r[-1]
            children.append(
                JobChild(
                    ref=self.ref(key),
                    kind=kind,
                    state=state,
                    name=text(fields[0]),
                    exists=bool(_count(r[0])),
                    value=text(value) if not isinstance(value, Exception) else "",
                    value_truncated=size > max_bytes,
                    failed_reason=text(fields[1]).split("\n", 1)[0][:300],
                    children=counts,
                )
            )
        return children

    async def remove_pending_children(self, queue: str, job_id: str, limit: int) -> PendingChildrenRemoved:
        """Let a parent stuck in `waiting_children` move on, the way BullMQ's own scripts do it.

        BullMQ's `removeUnprocessedChildren` deletes the pending children that have not run (with their
        own children), skipping running and failed ones; a failed child still pending is then unlinked
        with `removeChildDependency` (it stays in its failed set, for inspection). Each script moves the
        parent to waiting when it removes the last pending child. Running children are left alone: the
        parent waits for them. More than `limit` pending children is refused: one script call handles
        them all.
        """
        state = await self.jobs.job_state(queue, job_id)
        if state != "waiting_children":
            raise _not_in_state(queue, job_id, state, "waiting_children")
        job_key = self.jobs.key(queue, job_id)
        deps_key = f"{job_key}:dependencies"
        before = int(await self.redis.scard(deps_key))
        if before > limit:
            raise FailedPrecondition(
                f"job {job_id!r} of queue {queue!r} has {before} pending children; at most {limit} can be "
                "removed in one call",
                reason="TOO_MANY_CHILDREN",
                metadata={"queue": queue, "job_id": job_id, "pending": str(before), "limit": str(limit)},
            )
        commands = self._scripts
        queue_prefix = self.jobs.key(queue, "")
        if before:
            await commands["removeUnprocessedChildren"](
                keys=[job_key, self.jobs.key(queue, "meta")], args=[queue_prefix, job_id]
            )
        left = [text(m) for m in await self.redis.smembers(deps_key)]
        detached = 0
        for key in sorted(left):
            ref = self.ref(key)
            failed_set = f"{self._queue_key(ref)}:failed"
            if await self.redis.zscore(failed_set, ref.job_id) is None:
                continue  # running (or about to): the parent waits for it
            result = await commands["removeChildDependency"](
                keys=[self._queue_key(ref) + ":"], args=[key, job_key]
            )
            detached += integer(result) == 0
        still = int(await self.redis.scard(deps_key))
        removed = before - len(left)
        return PendingChildrenRemoved(
            removed=removed,
            detached=detached,
            still_pending=still,
            state=await self.jobs.job_state(queue, job_id),
        )

    # -- job schedulers ------------------------------------------------------------------------------

    async def list_schedulers(
        self, queue: str, page_size: int, cursor: str | None, max_bytes: int
    ) -> SchedulerPage:
        """A page of the queue's job schedulers, soonest next run first (BullMQ's `getJobSchedulers`
        order with `asc`)."""
        _, offset = _cursor(cursor, 1) if cursor else (0, 0)
        repeat = self.jobs.key(queue, "repeat")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.jobs.key(queue, "meta"), self.jobs.key(queue, "id"))
            pipe.zcard(repeat)
            pipe.zrange(repeat, offset, offset + page_size - 1, withscores=True)
            exists, total, members = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not exists:
            raise _not_found_queue(queue)
        if isinstance(members, Exception):
            return SchedulerPage([], "", 0)
        async with self.redis.pipeline(transaction=False) as pipe:
            for member, _ in members:
                pipe.hgetall(f"{repeat}:{text(member)}")
            hashes = wrong_types_kept(await pipe.execute(raise_on_error=False))
        schedulers = [
            self._scheduler(text(m), score, h if not isinstance(h, Exception) else {}, max_bytes)
            for (m, score), h in zip(members, hashes, strict=True)
        ]
        end = offset + len(members)
        return SchedulerPage(schedulers, f"0:{end}" if end < int(total) else "", int(total))

    @staticmethod
    def _scheduler(
        scheduler_id: str, score: float | None, raw: dict[Any, Any], max_bytes: int
    ) -> JobScheduler:
        fields = {text(k): text(v) for k, v in raw.items()}
        next_run = epoch_ms(score) if score is not None else None
        if not fields:
            # An older repeatable job: everything known is in its key, `name:id:endDate:tz:pattern`.
            parts = scheduler_id.split(":")
            parts += [""] * (5 - len(parts))
            return JobScheduler(
                id=scheduler_id,
                name=parts[0],
                pattern=":".join(parts[4:]),
                every_ms=None,
                tz=parts[3],
                next_run_ms=next_run,
                iteration_count=None,
                limit=None,
                start_ms=None,
                end_ms=epoch_ms(parts[2] or None),
                offset_ms=None,
                template_data="",
                template_data_truncated=False,
                template_options="",
                legacy=True,
            )
        numbers = {name: integer(fields.get(name)) for name in _NUMBER_FIELDS}
        data, truncated = _cut(fields.get("data", ""), max_bytes)
        return JobScheduler(
            id=scheduler_id,
            name=fields.get("name", ""),
            pattern=fields.get("pattern", ""),
            every_ms=numbers["every"],
            tz=fields.get("tz", ""),
            next_run_ms=next_run,
            iteration_count=numbers["ic"],
            limit=numbers["limit"],
            start_ms=epoch_ms(fields.get("startDate")),
            end_ms=epoch_ms(fields.get("endDate")),
            offset_ms=numbers["offset"],
            template_data=data,
            template_data_truncated=truncated,
            template_options=fields.get("opts", ""),
            legacy=False,
        )

    async def _scheduler_fields(self, queue: str, scheduler_id: str) -> dict[str, str]:
        """The scheduler's hash (empty for an older repeatable job); NotFound for no such scheduler."""
        repeat = self.jobs.key(queue, "repeat")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.jobs.key(queue, "meta"), self.jobs.key(queue, "id"))
            pipe.zscore(repeat, scheduler_id)
            pipe.hgetall(f"{repeat}:{scheduler_id}")
            exists, score, raw = wrong_types_kept(await pipe.execute(raise_on_error=False))
        if not exists:
            raise _not_found_queue(queue)
        if (score is None or isinstance(score, Exception)) and (isinstance(raw, Exception) or not raw):
            raise NotFound(
                f"job scheduler {scheduler_id!r} does not exist in queue {queue!r}",
                reason="JOB_SCHEDULER_NOT_FOUND",
                metadata={"queue": queue, "scheduler_id": scheduler_id},
            )
        return {} if isinstance(raw, Exception) else {text(k): text(v) for k, v in raw.items()}

    async def run_scheduler(self, queue: str, scheduler_id: str) -> JobSummary:
        """Add one job now from the scheduler's template: its name, data and options, without the ones
        that tie a job to the schedule (so the scheduler's next run and iteration count are untouched)."""
        fields = await self._scheduler_fields(queue, scheduler_id)
        name = fields.get("name") or scheduler_id.split(":", 1)[0]
        try:
            data = json.loads(fields["data"]) if fields.get("data") else {}
            stored = json.loads(fields["opts"]) if fields.get("opts") else {}
        except ValueError:
            raise FailedPrecondition(
                f"job scheduler {scheduler_id!r} of queue {queue!r} has a template that is not JSON",
                reason="JOB_SCHEDULER_TEMPLATE",
                metadata={"queue": queue, "scheduler_id": scheduler_id},
            ) from None
        opts = optsFromJSON(stored) if isinstance(stored, dict) else {}
        opts = {k: v for k, v in opts.items() if k not in _SCHEDULE_OPTS}
        job = await self.jobs._bull(queue).add(name, data, opts)
        job_id = text(job.id)
        summary = await self.jobs._lookup(queue, job_id)
        if summary is None:  # taken and removed at once by a worker with removeOnComplete
            raise _not_found_job(queue, job_id)
        return summary

    async def remove_scheduler(self, queue: str, scheduler_id: str) -> None:
        """Remove the scheduler and its next scheduled job (BullMQ's `removeJobScheduler`)."""
        await self._scheduler_fields(queue, scheduler_id)
        if integer(await self.jobs._bull(queue).removeJobScheduler(scheduler_id)) == 1:
            raise NotFound(
                f"job scheduler {scheduler_id!r} does not exist in queue {queue!r}",
                reason="JOB_SCHEDULER_NOT_FOUND",
                metadata={"queue": queue, "scheduler_id": scheduler_id},
            )
