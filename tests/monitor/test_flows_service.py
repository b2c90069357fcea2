"""MonitorService's flows and job schedulers over gRPC, on a flow and schedulers written by Node BullMQ.

produce.mjs (`flows` mode) leaves root waiting on bad (failed, no option) and hold (delayed), with mid
processed and ign ignored; mid's own children ok1 and ok2 in a second queue; schedulers `hourly` and
`nightly` on a third queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from tests.monitor.test_service import Suite, audit_rows, build_suite
from tests.support.bull import until
from tests.support.nodejs import NodeProcess, start_produce
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info

QUEUE = "flows"
KIDS = f"{QUEUE}-kids"
SCHED = f"{QUEUE}-sched"


@pytest.fixture
async def flow_suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[tuple[Suite, dict[str, str]]]:
    built, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority)
    node: NodeProcess = await start_produce(redis_url, built.queue_prefix, QUEUE, "flows")
    ids: dict[str, str] = node.ready["ids"]
    viewer = built.client("viewer")

    async def settled() -> bool:
        job = (await viewer.GetJob(pb.GetJobRequest(queue=QUEUE, job_id=ids["root"]))).job
        return (job.dependencies.pending, job.dependencies.processed, job.dependencies.ignored) == (2, 1, 1)

    try:
        await until(settled, what="the Node workers finishing the flow's children")
        yield built, ids
    finally:
        await node.stop()
        await stop()


async def _refused(call: Any, code: grpc.StatusCode) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    assert exc.value.code() == code, exc.value.details()
    return error_info(exc.value)


async def test_job_detail_children_pages_and_tree(flow_suite: tuple[Suite, dict[str, str]]) -> None:
    suite, ids = flow_suite
    viewer = suite.client("viewer")
    root = (await viewer.GetJob(pb.GetJobRequest(queue=QUEUE, job_id=ids["root"]))).job
    assert root.summary.state == pb.JOB_STATE_WAITING_CHILDREN and not root.HasField("parent")
    leaf = (await viewer.GetJob(pb.GetJobRequest(queue=KIDS, job_id=ids["ok1"]))).job
    assert (leaf.parent.queue, leaf.parent.job_id) == (QUEUE, ids["mid"])

    # The waiting-children state is listed and counted like the others.
    listed = await viewer.ListJobs(pb.ListJobsRequest(queue=QUEUE, states=[pb.JOB_STATE_WAITING_CHILDREN]))
    assert [j.job_id for j in listed.jobs] == [ids["root"]]
    queue = (await viewer.GetQueue(pb.GetQueueRequest(queue=QUEUE))).queue
    assert queue.counts.waiting_children == 1

    first = await viewer.ListJobChildren(
        pb.ListJobChildrenRequest(queue=QUEUE, job_id=ids["root"], page_size=3)
    )
    assert first.total_size == 4 and len(first.children) == 3 and first.next_page_token
    rest = await viewer.ListJobChildren(
        pb.ListJobChildrenRequest(
            queue=QUEUE, job_id=ids["root"], page_size=3, page_token=first.next_page_token
        )
    )
    children = {c.name: c for c in [*first.children, *rest.children]}
    assert len(children) == 4 and not rest.next_page_token
    assert children["mid"].kind == pb.CHILD_KIND_PROCESSED and children["mid"].dependencies.processed == 2
    assert children["bad"].kind == pb.CHILD_KIND_PENDING and children["bad"].state == pb.JOB_STATE_FAILED
    assert children["bad"].job.queue == KIDS and children["bad"].failed_reason == "bad child failed"
    assert children["ign"].kind == pb.CHILD_KIND_IGNORED
    grand = await viewer.ListJobChildren(
        pb.ListJobChildrenRequest(queue=QUEUE, job_id=ids["mid"], kind=pb.CHILD_KIND_PROCESSED)
    )
    assert sorted(c.job.job_id for c in grand.children) == sorted([ids["ok1"], ids["ok2"]])

    info = await _refused(
        viewer.ListJobChildren(pb.ListJobChildrenRequest(queue=QUEUE, job_id=ids["root"], page_size=201)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert info.metadata["field"] == "page_size"
    info = await _refused(
        viewer.ListJobChildren(pb.ListJobChildrenRequest(queue=QUEUE, job_id=ids["root"], kind=9)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert info.metadata["field"] == "kind"
    await _refused(
        viewer.ListJobChildren(pb.ListJobChildrenRequest(queue=QUEUE, job_id="missing")),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_removing_pending_children_is_confirmed_audited_and_releases_the_parent(
    flow_suite: tuple[Suite, dict[str, str]],
) -> None:
    suite, ids = flow_suite
    request = pb.RemovePendingChildrenRequest(queue=QUEUE, job_id=ids["root"], confirm=ids["root"])
    await _refused(suite.client("viewer").RemovePendingChildren(request), grpc.StatusCode.PERMISSION_DENIED)
    operator = suite.client("operator")
    wrong = pb.RemovePendingChildrenRequest(queue=QUEUE, job_id=ids["root"], confirm="nope")
    info = await _refused(operator.RemovePendingChildren(wrong), grpc.StatusCode.INVALID_ARGUMENT)
    assert info.metadata["field"] == "confirm"
    not_waiting = pb.RemovePendingChildrenRequest(queue=QUEUE, job_id=ids["mid"], confirm=ids["mid"])
    await _refused(operator.RemovePendingChildren(not_waiting), grpc.StatusCode.FAILED_PRECONDITION)

    done = await operator.RemovePendingChildren(request)
    assert (done.removed, done.detached, done.still_pending) == (1, 1, 0) and done.audit_id > 0
    viewer = suite.client("viewer")

    async def root_completed() -> bool:
        job = (await viewer.GetJob(pb.GetJobRequest(queue=QUEUE, job_id=ids["root"]))).job
        return job.summary.state == pb.JOB_STATE_COMPLETED

    await until(root_completed, what="the released root completing")
    rows = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_CHILDREN_REMOVE)
    outcomes = sorted(pb.AuditOutcome.Name(r.outcome) for r in rows)
    assert outcomes == [
        "AUDIT_OUTCOME_DENIED",
        "AUDIT_OUTCOME_FAILED",
        "AUDIT_OUTCOME_REFUSED",
        "AUDIT_OUTCOME_SUCCEEDED",
    ]
    succeeded = next(r for r in rows if r.outcome == pb.AUDIT_OUTCOME_SUCCEEDED)
    assert succeeded.entity_id == f"{QUEUE}/{ids['root']}" and succeeded.result["removed"] == 1


async def test_job_schedulers_listed_run_and_removed(flow_suite: tuple[Suite, dict[str, str]]) -> None:
    suite, _ = flow_suite
    viewer = suite.client("viewer")
    listed = await viewer.ListJobSchedulers(pb.ListJobSchedulersRequest(queue=SCHED))
    assert listed.total_size == 2
    by_id = {s.scheduler_id: s for s in listed.job_schedulers}
    assert by_id["hourly"].every_ms == 3_600_000 and by_id["hourly"].HasField("start_time")
    assert (by_id["nightly"].pattern, by_id["nightly"].tz, by_id["nightly"].limit) == (
        "0 3 * * *",
        "Asia/Seoul",
        10,
    )
    assert by_id["nightly"].HasField("next_run_time") and by_id["nightly"].HasField("iteration_count")
    page = await viewer.ListJobSchedulers(pb.ListJobSchedulersRequest(queue=SCHED, page_size=1))
    assert len(page.job_schedulers) == 1 and page.next_page_token
    info = await _refused(
        viewer.ListJobSchedulers(pb.ListJobSchedulersRequest(queue=SCHED, page_size=500)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert info.metadata["field"] == "page_size"
    await _refused(
        viewer.ListJobSchedulers(pb.ListJobSchedulersRequest(queue="no-such-queue")),
        grpc.StatusCode.NOT_FOUND,
    )

    operator = suite.client("operator")
    run = await operator.RunJobScheduler(pb.RunJobSchedulerRequest(queue=SCHED, scheduler_id="hourly"))
    assert run.job.name == "tick" and run.job.state == pb.JOB_STATE_WAITING and run.audit_id > 0
    await _refused(
        operator.RunJobScheduler(pb.RunJobSchedulerRequest(queue=SCHED, scheduler_id="nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    remove = pb.RemoveJobSchedulerRequest(queue=SCHED, scheduler_id="nightly", confirm="nightly")
    await _refused(operator.RemoveJobScheduler(remove), grpc.StatusCode.PERMISSION_DENIED)
    admin = suite.client("admin")
    info = await _refused(
        admin.RemoveJobScheduler(pb.RemoveJobSchedulerRequest(queue=SCHED, scheduler_id="nightly")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert info.metadata["field"] == "confirm"
    assert (await admin.RemoveJobScheduler(remove)).audit_id > 0
    left = await viewer.ListJobSchedulers(pb.ListJobSchedulersRequest(queue=SCHED))
    assert [s.scheduler_id for s in left.job_schedulers] == ["hourly"]
    await _refused(admin.RemoveJobScheduler(remove), grpc.StatusCode.NOT_FOUND)

    ran = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_SCHEDULER_RUN)
    assert {(r.entity_type, r.entity_id, pb.AuditOutcome.Name(r.outcome)) for r in ran} == {
        ("job_scheduler", f"{SCHED}/hourly", "AUDIT_OUTCOME_SUCCEEDED"),
        ("job_scheduler", f"{SCHED}/nope", "AUDIT_OUTCOME_FAILED"),
    }
    removed = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_SCHEDULER_REMOVE)
    assert sorted(pb.AuditOutcome.Name(r.outcome) for r in removed) == [
        "AUDIT_OUTCOME_DENIED",
        "AUDIT_OUTCOME_FAILED",
        "AUDIT_OUTCOME_REFUSED",
        "AUDIT_OUTCOME_SUCCEEDED",
    ]
