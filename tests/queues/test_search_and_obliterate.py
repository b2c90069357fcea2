"""The queue layer's search scan, export reads and obliterate, on queues written by Node BullMQ 6 and 5
(tests/node/search_fill.mjs) and by python bullmq: hits resumed exactly where a page stopped, budgets,
keys of another type, and nothing left of an obliterated queue."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.support.bull import Bull, until
from tests.support.nodejs import NODE_DIR, node_project
from workermon_queues import BullMQJobs
from workermon_queues.bullmq.search import BullMQSearch
from workermon_queues.errors import FailedPrecondition, InvalidArgument, NotFound
from workermon_queues.jobs import SearchQuery

ALL = ["active", "waiting", "prioritized", "delayed", "waiting_children", "completed", "failed", "paused"]


async def node_fill(package: str, redis_url: str, prefix: str, queue: str) -> dict[str, Any]:
    """Run search_fill.mjs with Node BullMQ `package` (bullmq, or bullmq5); its report."""
    args = [str(NODE_DIR / "search_fill.mjs"), package, redis_url, prefix, queue]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(node_project(), *args, cwd=NODE_DIR, stdout=pipe, stderr=pipe)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


@pytest.mark.parametrize(("package", "major"), [("bullmq", "6"), ("bullmq5", "5")])
async def test_node_written_queues_searched_exported_and_obliterated(
    package: str, major: str, redis_url: str, redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    report = await node_fill(package, redis_url, bull.prefix, "nq")
    assert report["version"].startswith(major + ".")
    ids = report["ids"]

    text = await jobs.search_scan(SearchQuery(["nq"], ALL, "", "HÉLLO", 50, None))
    assert sorted(h.job.id for h in text.hits) == sorted(ids["ok"])  # ASCII case folds, UTF-8 kept as is
    reason = await jobs.search_scan(SearchQuery(["nq"], ALL, "", "disk FULL", 50, None))
    assert [(h.job.id, h.matched, h.job.state) for h in reason.hits] == [
        (ids["boom"], "failed_reason", "failed")
    ]
    names = await jobs.search_scan(SearchQuery(["nq"], ["delayed", "prioritized"], "", "", 50, None))
    assert sorted(h.job.name for h in names.hits) == ["later", "later", "prio"]
    assert names.scanned == names.total == 3 and names.next_cursor == ""
    by_id = await jobs.search_by_id(["nq", "other"], [], ids["dedup"])
    assert [(h.queue, h.job.name, h.job.state) for h in by_id.hits] == [("nq", "dedup", "waiting")]

    data = await jobs.job_data("nq", ids["ok"], 10)
    assert all(size > 10 and len(value.encode()) <= 10 for value, size in data)
    full = await jobs.job_data("nq", ids["ok"][:1], 1000)
    assert json.loads(full[0][0])["text"] == "héllo wörld"

    # BullMQ 5 and 6 both keep a deduplication key: obliterate leaves no key of the queue behind.
    assert await redis.exists(f"{bull.prefix}:nq:de:same-order")
    calls = await jobs.obliterate("nq", force=False, batch=2)
    assert calls >= 4  # 8 jobs, 2 per call
    assert [k async for k in redis.scan_iter(match=f"{bull.prefix}:nq:*")] == []
    with pytest.raises(NotFound):
        await jobs.obliterate("nq", force=False)


async def test_a_scan_resumes_exactly_after_the_last_hit_it_returned(bull: Bull, jobs: BullMQJobs) -> None:
    queue = bull.queue("pages")
    await queue.addBulk([{"name": "n", "data": {"tag": "match" if n % 3 == 0 else "no"}} for n in range(100)])
    search = BullMQSearch(jobs, batch=40, max_examined=1000)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await search.scan(SearchQuery(["pages"], ["waiting"], "", "match", 7, cursor))
        assert len(page.hits) <= 7
        seen += [h.job.id for h in page.hits]
        pages += 1
        cursor = page.next_cursor or None
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 34 and pages == 5
    assert page.scanned == page.total == 100


async def test_a_scan_stops_at_its_budget_and_says_how_far_it_got(bull: Bull, jobs: BullMQJobs) -> None:
    await bull.queue("budget").addBulk([{"name": "n", "data": {"n": n}} for n in range(250)])
    search = BullMQSearch(jobs, batch=50, max_examined=100)
    first = await search.scan(SearchQuery(["budget"], ["waiting"], "", "nothing-like-this", 50, None))
    assert (first.hits, first.scanned, first.total) == ([], 100, 250) and first.next_cursor
    second = await search.scan(
        SearchQuery(["budget"], ["waiting"], "", "nothing-like-this", 50, first.next_cursor)
    )
    assert second.scanned == 200
    # A time budget already spent still moves one window on, so a search always progresses.
    slow = BullMQSearch(jobs, batch=50, max_seconds=0.0)
    third = await slow.scan(SearchQuery(["budget"], ["waiting"], "", "x", 50, None))
    assert third.scanned == 50 and third.next_cursor


async def test_bad_cursors_unknown_queues_and_keys_of_another_type(
    redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    await bull.queue("mixed").add("kept", {"t": "needle"})
    await redis.set(f"{bull.prefix}:mixed:failed", "not a zset")
    found = await jobs.search_scan(SearchQuery(["mixed"], ALL, "", "needle", 10, None))
    assert [h.job.name for h in found.hits] == ["kept"]
    with pytest.raises(InvalidArgument, match="page_token"):
        await jobs.search_scan(SearchQuery(["mixed"], ALL, "", "x", 10, "not-a-cursor"))
    with pytest.raises(NotFound):
        await jobs.search_scan(SearchQuery(["absent"], ALL, "", "x", 10, None))
    # Discovered queues (not named by the caller) that vanish are just empty.
    gone = await jobs.search_scan(SearchQuery(["absent"], ALL, "", "x", 10, None, strict=False))
    assert gone.hits == [] and gone.total == 0


async def test_obliterate_refuses_a_queue_with_active_jobs_unless_forced(
    bull: Bull, jobs: BullMQJobs
) -> None:
    queue = bull.queue("busy")
    await queue.add("a", {})
    gate = asyncio.Event()

    async def hold(job: Any, token: str) -> None:
        await gate.wait()

    bull.worker("busy", hold)

    async def active() -> bool:
        return int(await queue.getJobCountByTypes("active")) == 1

    await until(active, what="the job turning active")
    with pytest.raises(FailedPrecondition, match="active"):
        await jobs.obliterate("busy", force=False)
    assert await jobs.obliterate("busy", force=True) >= 1
    gate.set()
    assert not await jobs.exists("busy")


async def test_python_written_non_ascii_text_is_found(bull: Bull, jobs: BullMQJobs) -> None:
    # python bullmq stores data with json.dumps' \uXXXX escapes, Node BullMQ as UTF-8: both are found.
    await bull.queue("py-text").add("greet", {"text": "Grüße aus Köln"})
    found = await jobs.search_scan(SearchQuery(["py-text"], ALL, "", "grüße", 10, None))
    assert [h.job.name for h in found.hits] == ["greet"]


async def test_a_cursor_survives_a_queue_vanishing_between_calls(
    redis: aioredis.Redis, bull: Bull, jobs: BullMQJobs
) -> None:
    for name in ("qa", "qb", "qc"):
        await bull.queue(name).addBulk([{"name": name, "data": {"n": n}} for n in range(30)])
    search = BullMQSearch(jobs, batch=10, max_examined=40)
    first = await search.scan(SearchQuery(["qa", "qb", "qc"], ["waiting"], "", "", 100, None, strict=False))
    assert {h.queue for h in first.hits} == {"qa", "qb"} and first.next_cursor  # stopped inside qb
    # qb is gone before the next call: the scan goes on with qc, from its start.
    second = await search.scan(
        SearchQuery(["qa", "qc"], ["waiting"], "", "", 100, first.next_cursor, strict=False)
    )
    assert {h.queue for h in second.hits} == {"qc"} and len(second.hits) == 30
