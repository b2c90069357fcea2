"""Search across queues, bulk job actions, export and obliterate over gRPC, on queues written by Python
BullMQ and by Node BullMQ (tests/node)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Job
from google.protobuf import json_format

from tests.monitor.test_service import Suite, audit_rows, build_suite, fill
from tests.support.bull import until
from tests.support.nodejs import start_produce
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[Suite]:
    built, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority, bulk_max_jobs=50)
    yield built
    await stop()


async def refused(call: asyncio.Future[object] | object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def field_of(exc: grpc.aio.AioRpcError) -> str:
    info = error_info(exc)
    return info.metadata.get("field", "") if info is not None else ""


async def node_queue(suite: Suite, name: str) -> None:
    """A queue written by Node BullMQ: 3 `ok`, 2 `flaky`, 2 delayed `later`, 1 prioritized job."""
    running = await start_produce(suite.redis_url, suite.queue_prefix, name, "produce")
    await running.stop()


async def export_text(client: pb_grpc.MonitorServiceStub, request: pb.ExportJobsRequest) -> tuple[str, str]:
    chunks = [reply.body async for reply in client.ExportJobs(request)]
    return (chunks[0].content_type if chunks else ""), b"".join(c.data for c in chunks).decode()


async def test_search_finds_jobs_by_id_name_and_text_across_queues(suite: Suite) -> None:
    await node_queue(suite, "node-orders")
    orders = suite.queue("py-orders")
    await fill(orders, 3, name="invoice")
    special = await orders.add("refund", {"customer": "ACME Corp", "amount": 12})
    viewer = suite.client("viewer")

    by_id = await viewer.SearchJobs(pb.SearchJobsRequest(job_id="1"))
    assert sorted(h.queue for h in by_id.hits) == ["node-orders", "py-orders"]
    assert {h.matched for h in by_id.hits} == {"id"}

    # Text inside job data, ignoring case, in every queue; the Node job's data is UTF-8 JSON.
    acme = await viewer.SearchJobs(pb.SearchJobsRequest(text="acme corp"))
    assert [(h.queue, h.job.job_id, h.matched) for h in acme.hits] == [("py-orders", special.id, "data")]
    node_text = await viewer.SearchJobs(pb.SearchJobsRequest(text="wörld"))
    assert sorted(h.job.name for h in node_text.hits) == ["ok", "ok", "ok"]
    assert {h.queue for h in node_text.hits} == {"node-orders"}
    assert not node_text.next_page_token and node_text.scanned == node_text.total == 12

    names = await viewer.SearchJobs(pb.SearchJobsRequest(name_prefix="fla"))
    assert [h.job.name for h in names.hits] == ["flaky", "flaky"]
    delayed = await viewer.SearchJobs(
        pb.SearchJobsRequest(queues=["node-orders"], states=[pb.JOB_STATE_DELAYED])
    )
    assert [h.job.name for h in delayed.hits] == ["later", "later"]


async def test_search_failure_reasons_of_failed_jobs(suite: Suite) -> None:
    queue = suite.queue("py-fail")
    await fill(queue, 2, name="charge")

    async def process(job: Job, token: str) -> None:
        raise RuntimeError("card declined by issuer")

    worker = suite.worker("py-fail", process)
    try:

        async def both_failed() -> bool:
            return int(await queue.getJobCountByTypes("failed")) == 2

        await until(both_failed, what="both jobs failing")
    finally:
        await worker.close()
    found = await suite.client("viewer").SearchJobs(pb.SearchJobsRequest(text="DECLINED"))
    assert [h.matched for h in found.hits] == ["failed_reason", "failed_reason"]
    assert all(h.job.state == pb.JOB_STATE_FAILED for h in found.hits)


async def test_search_refuses_bad_input(suite: Suite) -> None:
    viewer = suite.client("viewer")
    wide = await refused(viewer.SearchJobs(pb.SearchJobsRequest()))
    assert wide.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(wide) == "text"
    missing = await refused(viewer.SearchJobs(pb.SearchJobsRequest(queues=["no-such-queue"], text="x")))
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    token = await refused(viewer.SearchJobs(pb.SearchJobsRequest(text="x", page_token="bogus")))
    assert token.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(token) == "page_token"
    long = await refused(viewer.SearchJobs(pb.SearchJobsRequest(text="x" * 201)))
    assert field_of(long) == "text"


async def test_a_search_over_a_big_queue_reports_progress_and_resumes(suite: Suite) -> None:
    queue = suite.queue("big")
    for start in range(0, 50_000, 2_500):
        await queue.addBulk(
            [
                {"name": "bulk", "data": {"n": n, "tag": "needle" if n == 7 else "hay"}}
                for n in range(start, start + 2_500)
            ]
        )
    viewer = suite.client("viewer")
    request = pb.SearchJobsRequest(queues=["big"], text="NEEDLE")
    pages, hits, progress = 0, [], []
    while True:
        reply = await viewer.SearchJobs(request)
        pages += 1
        hits += list(reply.hits)
        progress.append((reply.scanned, reply.total))
        if not reply.next_page_token:
            break
        request.page_token = reply.next_page_token
    assert [h.job.job_id for h in hits] == ["8"]
    assert pages >= 10  # at most 5,000 jobs examined per call
    assert progress[0][0] <= 5_000 and progress[0][1] == 50_000
    assert [s for s, _ in progress] == sorted(s for s, _ in progress) and progress[-1][0] == 50_000


async def poll(client: pb_grpc.MonitorServiceStub, operation_id: str) -> pb.BulkOperation:
    last = pb.BulkOperation()

    async def ended() -> bool:
        nonlocal last
        last = (
            await client.GetBulkOperation(pb.GetBulkOperationRequest(operation_id=operation_id))
        ).operation
        return last.state != pb.BULK_OPERATION_STATE_RUNNING

    await until(ended, what="the bulk operation ending")
    return last


async def test_bulk_actions_count_skipped_jobs_and_write_one_audit_entry(suite: Suite) -> None:
    await node_queue(suite, "node-bulk")
    operator, admin = suite.client("operator"), suite.client("admin")
    listed = await operator.ListJobs(pb.ListJobsRequest(queue="node-bulk", page_size=100))
    ids = [j.job_id for j in listed.jobs]
    started = await operator.StartBulkJobAction(
        pb.StartBulkJobActionRequest(
            queue="node-bulk", action=pb.BULK_JOB_ACTION_PROMOTE, job_ids=ids, reason="release"
        )
    )
    done = await poll(operator, started.operation.operation_id)
    assert (done.state, done.total, done.succeeded, done.skipped, done.failed) == (
        pb.BULK_OPERATION_STATE_SUCCEEDED,
        8,
        2,
        6,
        0,
    )
    assert done.processed == 8 and done.end_time.seconds

    # Removing needs admin: an operator is refused, and the refusal is audited.
    denied = await refused(
        operator.StartBulkJobAction(
            pb.StartBulkJobActionRequest(
                queue="node-bulk", action=pb.BULK_JOB_ACTION_REMOVE, all_matching=True
            )
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    removal = await admin.StartBulkJobAction(
        pb.StartBulkJobActionRequest(
            queue="node-bulk",
            action=pb.BULK_JOB_ACTION_REMOVE,
            all_matching=True,
            states=[pb.JOB_STATE_WAITING, pb.JOB_STATE_PRIORITIZED],
            name_prefix="ok",
        )
    )
    removed = await poll(admin, removal.operation.operation_id)
    assert (removed.total, removed.succeeded) == (3, 3)
    left = await admin.ListJobs(pb.ListJobsRequest(queue="node-bulk", page_size=100))
    assert sorted(j.name for j in left.jobs) == ["flaky", "flaky", "later", "later", "prio"]

    async def settled() -> bool:
        rows = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_BULK_ACTION)
        return len(rows) == 3 and all(r.outcome != pb.AUDIT_OUTCOME_PENDING for r in rows)

    await until(settled, what="the bulk audit entries completing")
    rows = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_BULK_ACTION)
    by_outcome = {pb.AuditOutcome.Name(r.outcome): r for r in rows}
    assert set(by_outcome) == {"AUDIT_OUTCOME_SUCCEEDED", "AUDIT_OUTCOME_DENIED"}
    last = rows[0]
    assert last.parameters["action"] == "remove"
    assert json_format.MessageToDict(last.parameters)["filter"]["name_prefix"] == "ok"
    assert last.result["succeeded"] == 3 and last.result["skipped"] == 0


async def test_bulk_actions_refuse_bad_input_and_past_the_limit(suite: Suite) -> None:
    await fill(suite.queue("many"), 60)
    operator = suite.client("operator")
    over = await refused(
        operator.StartBulkJobAction(
            pb.StartBulkJobActionRequest(queue="many", action=pb.BULK_JOB_ACTION_RETRY, all_matching=True)
        )
    )
    assert over.code() == grpc.StatusCode.FAILED_PRECONDITION and "at most 50 jobs" in (over.details() or "")
    neither = await refused(
        operator.StartBulkJobAction(
            pb.StartBulkJobActionRequest(queue="many", action=pb.BULK_JOB_ACTION_RETRY)
        )
    )
    assert field_of(neither) == "job_ids"
    no_action = await refused(
        operator.StartBulkJobAction(pb.StartBulkJobActionRequest(queue="many", job_ids=["1"]))
    )
    assert field_of(no_action) == "action"
    bad_state = await refused(
        operator.StartBulkJobAction(
            pb.StartBulkJobActionRequest(
                queue="many",
                action=pb.BULK_JOB_ACTION_RETRY,
                all_matching=True,
                states=[999],  # type: ignore[list-item]
            )
        )
    )
    assert field_of(bad_state) == "states"
    refusals = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_BULK_ACTION)
    assert {r.outcome for r in refusals} == {pb.AUDIT_OUTCOME_REFUSED} and len(refusals) == 4
    unknown = await refused(operator.GetBulkOperation(pb.GetBulkOperationRequest(operation_id="nope")))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    gone = await refused(
        operator.StartBulkJobAction(
            pb.StartBulkJobActionRequest(queue="no-such", action=pb.BULK_JOB_ACTION_RETRY, all_matching=True)
        )
    )
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_export_as_jsonl_and_csv_and_data_only_for_admins(suite: Suite) -> None:
    await node_queue(suite, "node-export")
    viewer, operator, admin = suite.client("viewer"), suite.client("operator"), suite.client("admin")
    kind, body = await export_text(viewer, pb.ExportJobsRequest(queue="node-export"))
    rows = [json.loads(line) for line in body.splitlines()]
    assert kind == "application/x-ndjson" and len(rows) == 8 and "data" not in rows[0]
    assert {r["name"] for r in rows} == {"ok", "flaky", "later", "prio"}
    kind, body = await export_text(
        viewer, pb.ExportJobsRequest(queue="node-export", format=pb.EXPORT_FORMAT_CSV, name_prefix="later")
    )
    table = list(csv.DictReader(io.StringIO(body)))
    assert kind.startswith("text/csv") and [r["name"] for r in table] == ["later", "later"]
    assert table[0]["state"] == "delayed"

    with_data = pb.ExportJobsRequest(queue="node-export", include_data=True, name_prefix="ok")
    denied = await refused(export_text(operator, with_data))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    _, body = await export_text(admin, with_data)
    data = [json.loads(json.loads(line)["data"]) for line in body.splitlines()]
    assert sorted(d["n"] for d in data) == [0, 1, 2] and data[0]["text"] == "héllo wörld"
    rows_audited = await audit_rows(suite, action=pb.AUDIT_ACTION_JOB_EXPORT)
    assert [pb.AuditOutcome.Name(r.outcome) for r in rows_audited] == [
        "AUDIT_OUTCOME_SUCCEEDED",
        "AUDIT_OUTCOME_DENIED",
    ]
    assert rows_audited[0].result["jobs"] == 3


async def test_export_refuses_more_jobs_than_the_limit(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    small, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority, export_max_jobs=5)
    try:
        await fill(small.queue("wide"), 8, name="a")
        viewer = small.client("viewer")
        over = await refused(export_text(viewer, pb.ExportJobsRequest(queue="wide")))
        assert over.code() == grpc.StatusCode.FAILED_PRECONDITION and "at most 5 jobs" in (
            over.details() or ""
        )
        _, body = await export_text(viewer, pb.ExportJobsRequest(queue="wide", name_prefix="a"))
        lines = body.splitlines()
        assert len(lines) == 6 and "export limit of 5 jobs" in json.loads(lines[-1])["export_stopped"]
        missing = await refused(export_text(viewer, pb.ExportJobsRequest(queue="no-such")))
        assert missing.code() == grpc.StatusCode.NOT_FOUND
    finally:
        await stop()


async def test_obliterate_refuses_active_jobs_unless_forced(suite: Suite, redis: aioredis.Redis) -> None:
    await node_queue(suite, "node-gone")
    queue = suite.queue("busy")
    await fill(queue, 3)
    release = asyncio.Event()

    async def hold(job: Job, token: str) -> None:
        await release.wait()

    worker = suite.worker("busy", hold)
    admin, operator = suite.client("admin"), suite.client("operator")
    try:

        async def one_active() -> bool:
            return int(await queue.getJobCountByTypes("active")) >= 1

        await until(one_active, what="a job turning active")
        wrong = await refused(admin.ObliterateQueue(pb.ObliterateQueueRequest(queue="busy", confirm="bus")))
        assert field_of(wrong) == "confirm"
        busy = await refused(admin.ObliterateQueue(pb.ObliterateQueueRequest(queue="busy", confirm="busy")))
        assert busy.code() == grpc.StatusCode.FAILED_PRECONDITION and "active" in (busy.details() or "")
        denied = await refused(
            operator.ObliterateQueue(pb.ObliterateQueueRequest(queue="busy", confirm="busy", force=True))
        )
        assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
        forced = await admin.ObliterateQueue(
            pb.ObliterateQueueRequest(queue="busy", confirm="busy", force=True)
        )
        assert forced.batches >= 1 and forced.audit_id
    finally:
        release.set()
        await worker.close(force=True)
    done = await admin.ObliterateQueue(pb.ObliterateQueueRequest(queue="node-gone", confirm="node-gone"))
    assert done.audit_id
    left = [k async for k in redis.scan_iter(match=f"{suite.queue_prefix}:node-gone:*")]
    assert left == []
    unknown = await refused(
        admin.ObliterateQueue(pb.ObliterateQueueRequest(queue="node-gone", confirm="node-gone"))
    )
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
