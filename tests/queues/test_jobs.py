"""Browsing BullMQ jobs: listings, pages, filters and one job in full, over real queues and workers."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from bullmq import Job

from tests.support.bull import Bull, Gate, until
from workermon_queues import JOB_STATES, BullMQJobs, JobPage, JobSummary
from workermon_queues.errors import InvalidArgument, NotFound
from workermon_queues.replies import text

REASONS = {
    "bad-timeout": "ETIMEDOUT while calling the billing API\n    at fetch (billing.js:10)",
    "bad-limit": "429 Too Many Requests",
    "bad-schema": "schema validation failed: " + "x" * 500,
}


async def _process(job: Job, token: str) -> Any:
    if job.name in REASONS:
        raise RuntimeError(REASONS[job.name])
    await job.log(f"processing {job.id}")
    await job.log("done")
    await job.updateProgress({"step": 2})
    return {"ok": job.id, "name": job.name}


@dataclass
class Populated:
    """A queue holding jobs in every state, with the ids BullMQ gave them."""

    ids: dict[str, list[str]] = field(default_factory=dict)
    gate: Gate = field(default_factory=Gate)


async def _finished(bull: Bull, name: str, completed: int, failed: int) -> None:
    q = bull.queue(name)

    async def done() -> bool:
        counts = await q.getJobCounts("completed", "failed", "wait", "active")
        return bool(counts["completed"] == completed and counts["failed"] == failed)

    await until(done, what=f"{completed} completed and {failed} failed")


@pytest.fixture
async def populated(bull: Bull) -> AsyncIterator[Populated]:
    q = bull.queue("work")
    out = Populated()
    for i in range(4):
        await q.add(f"ok-{i}", {"i": i})
    for name in REASONS:
        await q.add(name, {"n": name}, {"attempts": 2})
    worker = bull.worker("work", _process, {"name": "first-worker"})
    await _finished(bull, "work", 4, 3)
    await worker.close()

    bull.worker("work", out.gate, {"concurrency": 1, "name": "gate-worker"})
    hold = await q.add("hold", {"held": True})

    async def held() -> bool:
        return bool(await q.getJobCounts("active") == {"active": 1})

    await until(held, what="a job held active")
    out.ids["active"] = [hold.id]
    out.ids["waiting"] = [(await q.add(f"wait-{i}", {"i": i})).id for i in range(2)]
    out.ids["prioritized"] = [(await q.add(f"prio-{p}", {}, {"priority": p})).id for p in (1, 5)]
    out.ids["delayed"] = [
        (await q.add(f"later-{i}", {}, {"delay": 3_600_000 * (i + 1)})).id for i in range(2)
    ]
    try:
        yield out
    finally:
        out.gate.release.set()


async def _raw_order(redis: aioredis.Redis, prefix: str, state: str) -> list[str]:
    """The ids of a state in listing order, read straight from BullMQ's keys."""
    key = {"waiting": "wait", "waiting_children": "waiting-children"}.get(state, state)
    full = f"{prefix}:work:{key}"
    if state in ("waiting", "active", "paused"):
        return [text(r) for r in await redis.lrange(full, 0, -1)]
    members: list[Any] = await redis.zrevrange(full, 0, -1)
    return [text(r) for r in members]


async def _all_pages(jobs: BullMQJobs, states: list[str], size: int, **filters: str) -> list[JobPage]:
    pages: list[JobPage] = []
    cursor: str | None = None
    while True:
        page = await jobs.list_jobs("work", states, size, cursor, **filters)
        pages.append(page)
        if not page.next_cursor:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 1000


async def test_each_state_lists_its_jobs_newest_first(
    populated: Populated, jobs: BullMQJobs, redis: aioredis.Redis, bull: Bull
) -> None:
    for state in JOB_STATES:
        page = await jobs.list_jobs("work", [state], 100, None)
        expected = await _raw_order(redis, bull.prefix, state)
        assert [j.id for j in page.jobs] == expected, state
        assert page.total == len(expected)
        assert page.next_cursor == ""
        assert all(j.state == state for j in page.jobs)

    waiting = await jobs.list_jobs("work", ["waiting"], 10, None)
    assert [j.id for j in waiting.jobs] == populated.ids["waiting"][::-1]  # newest first
    delayed = await jobs.list_jobs("work", ["delayed"], 10, None)
    assert [j.name for j in delayed.jobs] == ["later-1", "later-0"]  # due last first
    assert [j.delay_ms for j in delayed.jobs] == [7_200_000, 3_600_000]
    prioritized = await jobs.list_jobs("work", ["prioritized"], 10, None)
    assert [(j.name, j.priority) for j in prioritized.jobs] == [("prio-5", 5), ("prio-1", 1)]
    active = await jobs.list_jobs("work", ["active"], 10, None)
    assert [j.name for j in active.jobs] == ["hold"]
    assert active.jobs[0].processed_ms is not None and active.jobs[0].finished_ms is None

    completed = (await jobs.list_jobs("work", ["completed"], 10, None)).jobs
    assert sorted(j.name for j in completed) == [f"ok-{i}" for i in range(4)]
    for job in completed:
        assert job.attempts_made == 1 and job.max_attempts == 1
        assert job.processed_ms is not None and job.finished_ms is not None
        assert job.duration_ms == job.finished_ms - job.processed_ms >= 0
        assert job.created_ms <= job.processed_ms
        assert job.failed_reason == "" and job.failure_category == ""
    assert [j.finished_ms for j in completed] == sorted((j.finished_ms or 0 for j in completed), reverse=True)

    failed = {j.name: j for j in (await jobs.list_jobs("work", ["failed"], 10, None)).jobs}
    assert set(failed) == set(REASONS)
    for name, job in failed.items():
        assert job.attempts_made == 2 and job.max_attempts == 2
        assert job.failed_reason == REASONS[name].split("\n")[0][:300]
    assert len(failed["bad-schema"].failed_reason) == 300
    assert failed["bad-timeout"].failed_reason == "ETIMEDOUT while calling the billing API"
    assert {n: j.failure_category for n, j in failed.items()} == {
        "bad-timeout": "timeout",
        "bad-limit": "rate_limit",
        "bad-schema": "validation",
    }


async def test_pages_across_states_without_duplicates_or_misses(
    populated: Populated, jobs: BullMQJobs, redis: aioredis.Redis, bull: Bull
) -> None:
    states = ["failed", "waiting", "delayed", "completed", "active", "prioritized"]
    expected = [i for s in states for i in await _raw_order(redis, bull.prefix, s)]
    assert len(expected) == 3 + 2 + 2 + 4 + 1 + 2
    for size in (1, 2, 3, 5, 14, 100):
        pages = await _all_pages(jobs, states, size)
        seen = [j.id for p in pages for j in p.jobs]
        assert seen == expected, size
        assert all(p.total == len(expected) for p in pages)
        assert all(len(p.jobs) <= size for p in pages)
        assert all(len(p.jobs) == size for p in pages[:-1] if p.next_cursor and p.jobs), size


async def test_pages_stay_put_while_new_jobs_arrive(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    q = bull.queue("work")
    for i in range(12):
        await q.add(f"ok-{i}", {})
    worker = bull.worker("work", _process)
    await _finished(bull, "work", 12, 0)
    before = await _raw_order(redis, bull.prefix, "completed")
    # Many jobs finish in the same millisecond: give a run of them one score, the order is then by id.
    tie = await redis.zscore(f"{bull.prefix}:work:completed", before[3])
    assert tie is not None
    await redis.zadd(f"{bull.prefix}:work:completed", dict.fromkeys(before[3:9], tie), xx=True)
    before = await _raw_order(redis, bull.prefix, "completed")

    first = await jobs.list_jobs("work", ["completed"], 4, None)
    assert [j.id for j in first.jobs] == before[:4]
    for i in range(5):  # newer jobs go in at the top: no page after the first may shift
        await q.add(f"new-{i}", {})
    await _finished(bull, "work", 17, 0)
    await worker.close()
    rest = await _all_pages(jobs, ["completed"], 4)
    cursor = first.next_cursor
    seen = [j.id for j in first.jobs]
    while cursor:
        page = await jobs.list_jobs("work", ["completed"], 4, cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.next_cursor
    assert seen == before
    assert len({j.id for p in rest for j in p.jobs}) == 17

    # Removing the job a cursor points at does not lose the rest either.
    page = await jobs.list_jobs("work", ["completed"], 8, None)
    await jobs.remove_job("work", page.jobs[-1].id)
    tail = await jobs.list_jobs("work", ["completed"], 100, page.next_cursor)
    assert [j.id for j in page.jobs[:-1]] + [j.id for j in tail.jobs] == [
        i for i in await _raw_order(redis, bull.prefix, "completed")
    ]


async def test_a_job_met_in_two_states_is_listed_once(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    # What a page read while a job moves on sees: the job still in the wait list and already completed.
    q = bull.queue("work")
    moving = await q.add("moving", {})
    other = await q.add("other", {})
    await redis.zadd(f"{bull.prefix}:work:completed", {str(moving.id): 1.0})
    page = await jobs.list_jobs("work", ["waiting", "completed"], 10, None)
    assert sorted(j.id for j in page.jobs) == sorted([str(moving.id), str(other.id)])


async def test_waiting_list_pages_follow_their_cursor(bull: Bull, jobs: BullMQJobs) -> None:
    q = bull.queue("work")
    added = [(await q.add(f"job-{i}", {})).id for i in range(10)]
    first = await jobs.list_jobs("work", ["waiting"], 4, None)
    assert [j.id for j in first.jobs] == added[::-1][:4]
    newer = [(await q.add(f"job-new-{i}", {})).id for i in range(3)]
    second = await jobs.list_jobs("work", ["waiting"], 4, first.next_cursor)
    assert [j.id for j in second.jobs] == added[::-1][4:8]
    assert second.total == 13
    third = await jobs.list_jobs("work", ["waiting"], 4, second.next_cursor)
    assert [j.id for j in third.jobs] == added[::-1][8:]
    assert third.next_cursor == ""
    assert newer  # listed on a fresh first page
    assert [j.id for j in (await jobs.list_jobs("work", ["waiting"], 3, None)).jobs] == newer[::-1]


async def test_id_search(populated: Populated, jobs: BullMQJobs) -> None:
    failed = (await jobs.list_jobs("work", ["failed"], 1, None)).jobs[0]
    page = await jobs.list_jobs("work", ["failed", "completed"], 10, None, job_id=failed.id)
    assert page.jobs == [failed]
    assert page.total == 3 + 4 and page.next_cursor == "" and page.examined == 1
    # Found only when its state is among the listed ones.
    assert (await jobs.list_jobs("work", ["completed"], 10, None, job_id=failed.id)).jobs == []
    active = await jobs.list_jobs("work", list(JOB_STATES), 10, None, job_id=populated.ids["active"][0])
    assert [(j.name, j.state) for j in active.jobs] == [("hold", "active")]
    delayed = populated.ids["delayed"][0]
    found = await jobs.list_jobs("work", ["delayed"], 10, None, job_id=delayed)
    assert [j.state for j in found.jobs] == ["delayed"]
    assert (await jobs.list_jobs("work", list(JOB_STATES), 10, None, job_id="no-such-job")).jobs == []
    # Combined with the other filters.
    assert (
        await jobs.list_jobs("work", ["failed"], 10, None, job_id=failed.id, name_prefix="zzz")
    ).jobs == []


async def test_name_prefix_and_category_filters(populated: Populated, jobs: BullMQJobs) -> None:
    page = await jobs.list_jobs("work", list(JOB_STATES), 100, None, name_prefix="ok-")
    assert sorted(j.name for j in page.jobs) == [f"ok-{i}" for i in range(4)]
    assert page.total == 14 and page.examined == 14
    page = await jobs.list_jobs("work", ["failed"], 100, None, category="timeout")
    assert [j.name for j in page.jobs] == ["bad-timeout"]
    page = await jobs.list_jobs("work", list(JOB_STATES), 100, None, category="validation", name_prefix="bad")
    assert [j.name for j in page.jobs] == ["bad-schema"]
    assert (await jobs.list_jobs("work", ["completed"], 100, None, category="timeout")).jobs == []


async def test_filtered_scans_are_bounded_per_call(bull: Bull, redis: aioredis.Redis) -> None:
    q = bull.queue("work")
    await q.addBulk([{"name": "match" if i % 10 == 0 else "other", "data": {}} for i in range(120)])
    jobs = BullMQJobs(redis, prefix=bull.prefix, max_examined=25)
    pages = []
    cursor: str | None = None
    while True:
        page = await jobs.list_jobs("work", ["waiting"], 5, cursor, name_prefix="match")
        pages.append(page)
        assert page.examined <= 25
        assert page.total == 120
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    found = [j.id for p in pages for j in p.jobs]
    assert len(found) == len(set(found)) == 12
    assert all(j.name == "match" for p in pages for j in p.jobs)
    assert any(not p.jobs and p.next_cursor for p in pages) or len(pages) >= 5  # short pages happen
    assert sum(p.examined for p in pages) == 120


async def test_first_page_of_a_large_set_is_two_round_trips(
    bull: Bull, redis: aioredis.Redis, jobs: BullMQJobs
) -> None:
    # A completed set of 200,000 jobs (only the first page's hashes exist), then a first page read.
    key = f"{bull.prefix}:work"
    await redis.hset(f"{key}:meta", "opts.maxLenEvents", 10_000)
    batch = 10_000
    for start in range(0, 200_000, batch):
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(
                f"{key}:completed", {str(i): 1_700_000_000_000 + i for i in range(start, start + batch)}
            )
            await pipe.execute()
    top = [str(i) for i in range(199_999, 199_949, -1)]
    async with redis.pipeline(transaction=False) as pipe:
        for i in top:
            pipe.hset(
                f"{key}:{i}", mapping={"name": "bulk", "timestamp": 1, "finishedOn": 2, "processedOn": 1}
            )
        await pipe.execute()

    counted = Counting(redis)
    listing = BullMQJobs(counted, prefix=bull.prefix)  # type: ignore[arg-type]
    started = time.perf_counter()
    page = await listing.list_jobs("work", ["completed"], 50, None)
    elapsed = time.perf_counter() - started
    assert [j.id for j in page.jobs] == top
    assert page.total == 200_000
    assert counted.pipelines == 2
    assert elapsed < 0.5


class Counting:
    """A client wrapper counting pipelines (each is one round trip)."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.pipelines = 0

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        self.pipelines += 1
        return self.inner.pipeline(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_get_job_in_full(populated: Populated, jobs: BullMQJobs, redis: aioredis.Redis) -> None:
    completed = (await jobs.list_jobs("work", ["completed"], 1, None)).jobs[0]
    detail = await jobs.get_job("work", completed.id, 10_000)
    assert detail.summary == completed
    assert json.loads(detail.data) == {"i": int(completed.name.split("-")[1])}
    assert json.loads(detail.return_value) == {"ok": completed.id, "name": completed.name}
    assert not detail.data_truncated and not detail.return_value_truncated
    assert detail.data_bytes == len(detail.data.encode())
    assert detail.logs == [f"processing {completed.id}", "done"] and detail.logs_total == 2
    assert json.loads(detail.progress_json) == {"step": 2}
    assert detail.processed_by == ""  # python bullmq does not record its worker's name (Node does: pb)
    assert detail.stacktrace == [] and detail.failed_reason_full == "" and detail.parent_key == ""
    assert isinstance(json.loads(detail.options_json), dict)
    kinds = [e.kind for e in detail.timeline]
    assert kinds == ["created", "processed", "finished"]
    assert [e.time_ms for e in detail.timeline] == [
        completed.created_ms,
        completed.processed_ms,
        completed.finished_ms,
    ]
    assert detail.timeline[1].detail == "attempt 1 of 1"

    failed = {j.name: j for j in (await jobs.list_jobs("work", ["failed"], 10, None)).jobs}["bad-timeout"]
    detail = await jobs.get_job("work", failed.id, 10_000)
    assert detail.failed_reason_full == REASONS["bad-timeout"]
    assert len(detail.stacktrace) == 2 and all("RuntimeError" in s for s in detail.stacktrace)
    assert detail.return_value == "" and detail.return_value_bytes == 0
    assert detail.timeline[-1].kind == "finished" and detail.timeline[-1].detail.startswith(
        "failed: ETIMEDOUT"
    )

    delayed = await jobs.get_job("work", populated.ids["delayed"][0], 100)
    assert delayed.summary.state == "delayed"
    assert [e.kind for e in delayed.timeline] == ["created", "delayed_until"]
    assert delayed.timeline[1].time_ms == delayed.summary.created_ms + 3_600_000
    active = await jobs.get_job("work", populated.ids["active"][0], 100)
    assert active.summary.state == "active"


async def test_large_payload_is_cut_inside_redis(bull: Bull, jobs: BullMQJobs) -> None:
    q = bull.queue("work")
    blob = "a" * (5 * 1024 * 1024)  # 5 MB (python bullmq writes ASCII JSON; Node's UTF-8 cut: test_node)
    job = await q.add("big", {"blob": blob})
    size = len(json.dumps({"blob": blob}, separators=(",", ":")).encode())

    detail = await jobs.get_job("work", job.id, 1000)
    assert detail.data_truncated
    assert detail.data_bytes >= 5 * 1024 * 1024
    assert abs(detail.data_bytes - size) < 64  # however bullmq spaced its JSON
    assert len(detail.data.encode()) <= 1000
    assert detail.data.startswith('{"blob"') or detail.data.startswith('{"blob": ')
    whole = await jobs.get_job("work", job.id, 6 * 1024 * 1024)
    assert not whole.data_truncated and json.loads(whole.data) == {"blob": blob}
    nothing = await jobs.get_job("work", job.id, 0)
    assert nothing.data == "" and nothing.data_truncated


async def test_unknown_queue_job_and_bad_arguments(populated: Populated, jobs: BullMQJobs) -> None:
    with pytest.raises(NotFound) as err:
        await jobs.list_jobs("nope", ["waiting"], 10, None)
    assert err.value.reason == "QUEUE_NOT_FOUND"
    with pytest.raises(NotFound):
        await jobs.list_jobs("nope", ["waiting"], 10, None, job_id="1")
    with pytest.raises(NotFound):
        await jobs.get_job("nope", "1", 10)
    with pytest.raises(NotFound) as err:
        await jobs.get_job("work", "no-such-job", 10)
    assert err.value.reason == "JOB_NOT_FOUND"
    with pytest.raises(NotFound):
        await jobs.job_state("work", "no-such-job")
    with pytest.raises(NotFound):
        await jobs.job_state("nope", "1")

    for garbage in ("garbage", "eyJ4IjoxfQ", "W10", "WzEsOSwwLG51bGwsbnVsbF0", "!!!"):
        with pytest.raises(InvalidArgument) as bad:
            await jobs.list_jobs("work", ["waiting"], 10, garbage)
        assert bad.value.field == "page_token"
    # A cursor from a listing of more states does not fit a listing of fewer.
    page = await jobs.list_jobs("work", ["failed", "completed"], 4, None)
    with pytest.raises(InvalidArgument):
        await jobs.list_jobs("work", ["failed"], 4, page.next_cursor)
    with pytest.raises(InvalidArgument) as bad:
        await jobs.list_jobs("work", ["running"], 10, None)
    assert bad.value.field == "states"
    for size in (0, 1001):
        with pytest.raises(InvalidArgument):
            await jobs.list_jobs("work", ["waiting"], size, None)
    with pytest.raises(InvalidArgument):
        await jobs.get_job("work", "1", -1)


async def test_summary_type(populated: Populated, jobs: BullMQJobs) -> None:
    page = await jobs.list_jobs("work", [], 100, None)  # no states: all of them
    assert page.total == 14 and len(page.jobs) == 14
    assert all(isinstance(j, JobSummary) for j in page.jobs)
    assert await jobs.job_state("work", populated.ids["waiting"][0]) == "waiting"
    assert await jobs.job_state("work", populated.ids["prioritized"][0]) == "prioritized"


# --- What others may have stored -------------------------------------------------------------------


async def test_a_state_key_of_another_type_leaves_the_other_states_listed(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    q = bull.queue("odd")
    added = [await q.add("j", {"i": i}) for i in range(3)]
    await redis.set(jobs.key("odd", "delayed"), "x")
    await redis.set(jobs.key("odd", "failed"), "x")
    page = await jobs.list_jobs("odd", [], 50, None)
    assert sorted(j.id for j in page.jobs) == sorted(a.id for a in added) and page.total == 3
    only = await jobs.list_jobs("odd", ["failed"], 50, None)
    assert (only.jobs, only.total, only.next_cursor) == ([], 0, "")
    # Paged one at a time across the broken states.
    seen, cursor = [], None
    while True:
        step = await jobs.list_jobs("odd", ["failed", "waiting", "delayed"], 1, cursor)
        seen += [j.id for j in step.jobs]
        if not step.next_cursor:
            break
        cursor = step.next_cursor
    assert sorted(seen) == sorted(a.id for a in added)
    found = await jobs.list_jobs("odd", [], 50, None, job_id=added[0].id)
    assert [j.id for j in found.jobs] == [added[0].id]
    detail = await jobs.get_job("odd", added[0].id, 1000)
    assert detail.summary.state == "waiting" and await jobs.job_state("odd", added[0].id) == "waiting"


async def test_a_job_key_of_another_type_is_listed_and_shown_with_a_note(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    q = bull.queue("odd")
    good, bad = await q.add("good", {}), await q.add("bad", {})
    await redis.delete(jobs.key("odd", bad.id))
    await redis.set(jobs.key("odd", bad.id), "not a hash")
    await redis.set(jobs.key("odd", good.id) + ":logs", "not a list")
    page = await jobs.list_jobs("odd", ["waiting"], 50, None)
    assert [(j.id, j.name, j.created_ms is None) for j in page.jobs] == [
        (bad.id, "", True),
        (good.id, "good", False),
    ]
    shown = await jobs.get_job("odd", bad.id, 1000)
    assert (shown.summary.state, shown.data, shown.data_bytes) == ("waiting", "", 0)
    assert [(t.kind, t.detail) for t in shown.timeline] == [
        ("note", f"{jobs.key('odd', bad.id)} is a string, expected a hash")
    ]
    logs = await jobs.get_job("odd", good.id, 1000)
    assert (logs.logs, logs.logs_total) == ([], 0)
    assert logs.timeline[-1].detail == f"{jobs.key('odd', good.id)}:logs is a string, expected a list"


async def test_text_that_is_not_utf8_is_replaced_and_noted_with_its_size(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    q = bull.queue("bytes")
    job = await q.add("fine", {"a": 1})
    key = jobs.key("bytes", job.id)
    await redis.hset(
        key,
        mapping={
            "name": b"caf\xe9",
            "failedReason": b"bad \xff\xfe input\nline two",
            "data": b'{"a": "\xff"}',
            "stacktrace": b'["Error: \xc3(", "second"]',
        },
    )
    await redis.rpush(key + ":logs", b"ok line", b"bad \xff line")
    (row,) = (await jobs.list_jobs("bytes", [], 50, None)).jobs
    assert (row.name, row.failed_reason) == ("caf\ufffd", "bad \ufffd\ufffd input")
    assert row.failure_category
    detail = await jobs.get_job("bytes", job.id, 1000)
    assert detail.summary.name == "caf\ufffd" and detail.failed_reason_full.startswith("bad \ufffd\ufffd")
    assert (detail.data, detail.data_bytes) == ('{"a": "\ufffd"}', 10)
    assert detail.stacktrace == ["Error: \ufffd(", "second"]
    assert detail.logs == ["ok line", "bad \ufffd line"]
    notes = [t.detail for t in detail.timeline if t.kind == "note"]
    assert notes == [
        "name is not valid UTF-8 (4 bytes): shown with U+FFFD replacement characters",
        "failedReason is not valid UTF-8 (21 bytes): shown with U+FFFD replacement characters",
        "stacktrace is not valid UTF-8 (23 bytes): shown with U+FFFD replacement characters",
        "data is not valid UTF-8 (10 bytes): shown with U+FFFD replacement characters",
        "logs: some lines are not valid UTF-8 and are shown with U+FFFD replacement characters",
    ]
    assert all(t.time_ms is None for t in detail.timeline if t.kind == "note")


async def test_times_that_are_not_times_are_unknown(
    bull: Bull, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    q = bull.queue("times")
    job = await q.add("j", {}, {"delay": 60_000})
    key = jobs.key("times", job.id)
    await redis.hset(key, mapping={"timestamp": "abc", "processedOn": "", "finishedOn": "1e999"})
    (row,) = (await jobs.list_jobs("times", [], 50, None)).jobs
    assert (row.created_ms, row.processed_ms, row.finished_ms, row.duration_ms) == (None, None, None, None)
    detail = await jobs.get_job("times", job.id, 1000)
    assert [(t.kind, t.detail) for t in detail.timeline] == [
        ("note", "timestamp 'abc' is not a time: shown as unknown"),
        ("note", "processedOn '' is not a time: shown as unknown"),
        ("note", "finishedOn '1e999' is not a time: shown as unknown"),
    ]
    # A job that finished before it started has no duration (not a negative one).
    now = int(time.time() * 1000)
    await redis.hset(key, mapping={"timestamp": now - 5_000, "processedOn": now, "finishedOn": now - 1_000})
    (row,) = (await jobs.list_jobs("times", [], 50, None)).jobs
    assert (row.created_ms, row.processed_ms, row.finished_ms, row.duration_ms) == (
        now - 5_000,
        now,
        now - 1_000,
        None,
    )
