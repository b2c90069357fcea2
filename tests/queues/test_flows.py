"""Flows and job schedulers written by Node BullMQ (FlowProducer, upsertJobScheduler), read and acted on.

produce.mjs in `flows` mode builds root -> mid -> (ok1, ok2) with bad, ign and hold beside mid, across two
queues, and works both: the root ends stuck in waiting-children (bad failed without an option, hold is
delayed an hour). Two schedulers live on their own queue, which no worker drains. Each test runs on
what Node BullMQ 6 writes and on what BullMQ 5 (5.47, the `bullmq5` alias in tests/node) writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.support.bull import Bull, until
from tests.support.nodejs import NodeProcess, start_produce
from workermon_queues import BullMQJobs
from workermon_queues.bullmq.flows import BullMQFlows
from workermon_queues.errors import FailedPrecondition, InvalidArgument, NotFound
from workermon_queues.flows import DependencyCounts

QUEUE = "flowq"
KIDS = f"{QUEUE}-kids"
SCHED = f"{QUEUE}-sched"


@pytest.fixture(params=["bullmq", "bullmq5"])
async def node_flow(request: pytest.FixtureRequest, redis_url: str, bull: Bull) -> AsyncIterator[NodeProcess]:
    """The flow and schedulers written by Node BullMQ 6 and by BullMQ 5 (same layout, read alike)."""
    node_process = await start_produce(redis_url, bull.prefix, QUEUE, "flows", request.param)
    try:
        yield node_process
    finally:
        await node_process.stop()


@pytest.fixture
def flows(jobs: BullMQJobs) -> BullMQFlows:
    return BullMQFlows(jobs)


async def _settled(flows: BullMQFlows, root: str) -> None:
    async def done() -> bool:
        _, counts = await flows.flow_of(QUEUE, root)
        return counts == DependencyCounts(pending=2, processed=1, ignored=1)

    await until(done, what="the Node workers finishing the flow's children")


async def test_node_flow_parent_children_and_tree(
    node_flow: NodeProcess, flows: BullMQFlows, jobs: BullMQJobs
) -> None:
    ids = node_flow.ready["ids"]
    await _settled(flows, ids["root"])
    assert await jobs.job_state(QUEUE, ids["root"]) == "waiting_children"

    parent, counts = await flows.flow_of(QUEUE, ids["root"])
    assert parent is None and counts.total == 4
    parent, counts = await flows.flow_of(KIDS, ids["ok1"])
    assert parent is not None and (parent.queue, parent.job_id) == (QUEUE, ids["mid"])
    parent, counts = await flows.flow_of(QUEUE, ids["mid"])
    assert parent is not None and (parent.queue, parent.job_id) == (QUEUE, ids["root"])
    assert counts == DependencyCounts(processed=2)

    page = await flows.list_children(QUEUE, ids["root"], [], 10, None, 1024)
    assert page.total == 4 and page.next_cursor == ""
    by_name = {c.name: c for c in page.children}
    assert {c.kind for c in page.children} == {"pending", "processed", "ignored"}
    assert by_name["bad"].kind == "pending" and by_name["bad"].state == "failed"
    assert by_name["hold"].kind == "pending" and by_name["hold"].state == "delayed"
    assert by_name["ign"].kind == "ignored" and "ign child failed" in by_name["ign"].value
    mid = by_name["mid"]
    assert mid.kind == "processed" and mid.state == "completed" and '"done":"mid"' in mid.value
    assert (mid.ref.queue, mid.ref.job_id) == (QUEUE, ids["mid"])
    assert mid.children == DependencyCounts(processed=2)
    assert by_name["bad"].ref.queue == KIDS

    # Paged one at a time, every child once; the third level below mid.
    seen, cursor = [], None
    while True:
        one = await flows.list_children(QUEUE, ids["root"], [], 1, cursor, 1024)
        seen += [c.ref.job_id for c in one.children]
        cursor = one.next_cursor
        if not cursor:
            break
    assert sorted(seen) == sorted(ids[n] for n in ("mid", "bad", "ign", "hold"))
    grand = await flows.list_children(QUEUE, ids["mid"], ["processed"], 10, None, 4)
    assert sorted(c.ref.job_id for c in grand.children) == sorted([ids["ok1"], ids["ok2"]])
    assert all(c.value_truncated and len(c.value.encode()) <= 4 for c in grand.children)

    with pytest.raises(InvalidArgument):
        await flows.list_children(QUEUE, ids["root"], [], 10, "9:0", 1024)
    with pytest.raises(NotFound):
        await flows.list_children(QUEUE, "no-such-job", [], 10, None, 1024)


async def test_removing_pending_children_moves_a_stuck_parent_on(
    node_flow: NodeProcess, flows: BullMQFlows, jobs: BullMQJobs, redis: aioredis.Redis, bull: Bull
) -> None:
    ids = node_flow.ready["ids"]
    await _settled(flows, ids["root"])
    with pytest.raises(FailedPrecondition, match="at most 1"):
        await flows.remove_pending_children(QUEUE, ids["root"], 1)
    with pytest.raises(FailedPrecondition):
        await flows.remove_pending_children(QUEUE, ids["mid"], 10)  # completed, not waiting

    outcome = await flows.remove_pending_children(QUEUE, ids["root"], 10)
    assert (outcome.removed, outcome.detached, outcome.still_pending) == (1, 1, 0)
    assert outcome.state in ("waiting", "active", "completed")
    # hold is gone; bad stays failed in its own queue, unlinked; the root runs and completes.
    assert not await redis.exists(f"{bull.prefix}:{KIDS}:{ids['hold']}")
    assert await jobs.job_state(KIDS, ids["bad"]) == "failed"

    async def root_completed() -> bool:
        return await jobs.job_state(QUEUE, ids["root"]) == "completed"

    await until(root_completed, what="the released root completing")


async def test_node_job_schedulers_listed_run_and_removed(
    node_flow: NodeProcess, flows: BullMQFlows, jobs: BullMQJobs, request: pytest.FixtureRequest
) -> None:
    page = await flows.list_schedulers(SCHED, 10, None, 1024)
    assert page.total == 2 and page.next_cursor == ""
    by_id = {s.id: s for s in page.schedulers}
    hourly, nightly = by_id["hourly"], by_id["nightly"]
    assert (hourly.name, hourly.every_ms, hourly.pattern) == ("tick", 3_600_000, "")
    # BullMQ 5 keeps no startDate in the scheduler's hash (only in the jobs it makes); 6 does.
    v5 = request.node.callspec.params["node_flow"] == "bullmq5"
    assert (hourly.start_ms is None) == v5 and hourly.next_run_ms is not None
    assert hourly.template_data == '{"x":1}' and '"attempts":2' in hourly.template_options
    assert (nightly.name, nightly.pattern, nightly.tz, nightly.limit) == (
        "report",
        "0 3 * * *",
        "Asia/Seoul",
        10,
    )
    assert nightly.iteration_count is not None and not nightly.legacy
    assert [s.id for s in page.schedulers] == sorted(by_id, key=lambda i: by_id[i].next_run_ms or 0)

    first = await flows.list_schedulers(SCHED, 1, None, 1024)
    second = await flows.list_schedulers(SCHED, 1, first.next_cursor, 1024)
    assert first.next_cursor and not second.next_cursor
    assert {first.schedulers[0].id, second.schedulers[0].id} == {"hourly", "nightly"}

    job = await flows.run_scheduler(SCHED, "hourly")
    assert job.name == "tick" and job.state == "waiting" and job.max_attempts == 2
    detail = await jobs.get_job(SCHED, job.id, 1024)
    assert detail.data == '{"x":1}'
    after = await flows.list_schedulers(SCHED, 10, None, 1024)
    assert {s.id: s.iteration_count for s in after.schedulers} == {
        s.id: s.iteration_count for s in page.schedulers
    }

    await flows.remove_scheduler(SCHED, "nightly")
    assert [s.id for s in (await flows.list_schedulers(SCHED, 10, None, 1024)).schedulers] == ["hourly"]
    with pytest.raises(NotFound):
        await flows.remove_scheduler(SCHED, "nightly")
    with pytest.raises(NotFound):
        await flows.run_scheduler(SCHED, "nope")


async def test_legacy_repeatable_job_key_is_read(
    flows: BullMQFlows, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    # The layout before job schedulers: only a member `name:id:endDate:tz:pattern` of the repeat zset.
    await redis.hset(jobs.key("legacy", "meta"), "opts.maxLenEvents", "10000")
    await redis.zadd(
        jobs.key("legacy", "repeat"), {"send::1767225600000:Europe/Paris:*/5 * * * *": 1_700_000_000_000}
    )
    (only,) = (await flows.list_schedulers("legacy", 10, None, 1024)).schedulers
    assert only.legacy and only.name == "send" and only.tz == "Europe/Paris"
    assert only.pattern == "*/5 * * * *" and only.end_ms == 1_767_225_600_000
    assert only.next_run_ms == 1_700_000_000_000


async def test_what_others_stored_is_read_without_failing(
    flows: BullMQFlows, jobs: BullMQJobs, redis: aioredis.Redis
) -> None:
    # A parent whose pending set is a string, and a scheduler whose times are not times.
    await redis.hset(jobs.key("odd", "meta"), "opts.maxLenEvents", "10000")
    await redis.hset(jobs.key("odd", "1"), mapping={"name": "p", "timestamp": "1", "parent": "{not json"})
    await redis.set(jobs.key("odd", "1") + ":dependencies", "oops")
    await redis.hset(jobs.key("odd", "1") + ":processed", jobs.key("odd", "gone"), '"r"')
    parent, counts = await flows.flow_of("odd", "1")
    assert parent is None and counts == DependencyCounts(processed=1)
    page = await flows.list_children("odd", "1", [], 10, None, 1024)
    (gone,) = page.children
    assert (gone.ref.job_id, gone.kind, gone.state, gone.exists, gone.value) == (
        "gone",
        "processed",
        None,
        False,
        '"r"',
    )
    await redis.zadd(jobs.key("odd", "repeat"), {"s": 1e20})
    await redis.hset(
        jobs.key("odd", "repeat:s"), mapping={"name": "n", "startDate": "abc", "endDate": "1e30"}
    )
    (scheduler,) = (await flows.list_schedulers("odd", 10, None, 1024)).schedulers
    assert (scheduler.next_run_ms, scheduler.start_ms, scheduler.end_ms) == (None, None, None)
