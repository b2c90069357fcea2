"""Every annotated route through the gateway, over real HTTP, on real BullMQ queues."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from bullmq import FlowProducer
from google.protobuf.descriptor import FieldDescriptor

from tests.support.bull import until
from tests.support.gateway import Gateway, fail_some
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_gateway import transcode
from workermon_gateway.routes import ApiRouter, build_routes
from workermon_gateway.transcode import PathTemplate

# Routes this module calls; the last test checks that none of the built routes was left out.
CALLED: set[tuple[str, str]] = set()


def called(verb: str, template: str) -> None:
    CALLED.add((verb, template))


async def test_queue_reads_and_job_pages(gateway: Gateway) -> None:
    queue = gateway.queue("gw-emails")
    await fail_some(gateway, queue, completed=2, failed=3)
    await queue.add("later", {"x": 1}, {"delay": 600_000})
    viewer = gateway.client("viewer")

    async def discovered() -> bool:
        # The board finds new queues by SCAN, refreshed every 2 s: a queue just created may be missing.
        reply = await viewer.get("/api/v1/overview")
        return reply.status_code == 200 and int(reply.json().get("counts", {}).get("failed", 0)) >= 3

    await until(discovered, limit=10, what="the new queue in the overview")
    overview = await viewer.get("/api/v1/overview")
    called("GET", "/v1/overview")
    assert overview.status_code == 200, overview.text
    body = overview.json()
    # Proto3 JSON: lowerCamelCase, int64 as strings, lists always present.
    assert int(body["counts"]["failed"]) >= 3 and isinstance(body["pausedQueues"], list), body
    assert "x-request-id" in overview.headers

    listed = (await viewer.get("/api/v1/queues", params={"namePrefix": "gw-em"})).json()
    called("GET", "/v1/queues")
    assert [q["name"] for q in listed["queues"]] == ["gw-emails"]

    one = await viewer.get("/api/v1/queues/gw-emails")
    called("GET", "/v1/queues/{queue}")
    assert one.json()["queue"]["counts"]["delayed"] == "1"

    trend = await viewer.get("/api/v1/queues/gw-emails/trend", params={"hours": 1, "step": "300s"})
    called("GET", "/v1/queues/{queue}/trend")
    assert trend.status_code == 200, trend.text
    assert isinstance(trend.json()["points"], list)

    # states by short name, case-insensitive; a page of 2, then the rest through the token.
    page = await viewer.get("/api/v1/queues/gw-emails/jobs", params={"states": "Failed", "pageSize": 2})
    called("GET", "/v1/queues/{queue}/jobs")
    assert page.status_code == 200, page.text
    first = page.json()
    assert len(first["jobs"]) == 2 and first["totalSize"] == "3"
    assert all(job["state"] == "JOB_STATE_FAILED" for job in first["jobs"])
    rest = (
        await viewer.get(
            "/api/v1/queues/gw-emails/jobs",
            params={"states": "failed", "page_size": 50, "pageToken": first["nextPageToken"]},
        )
    ).json()
    assert len(rest["jobs"]) == 1 and "nextPageToken" not in rest

    # Repeated as a comma list and as repeated parameters, full names and short ones mixed.
    both = await viewer.get("/api/v1/queues/gw-emails/jobs?states=completed,JOB_STATE_DELAYED&states=failed")
    assert {j["state"] for j in both.json()["jobs"]} == {
        "JOB_STATE_COMPLETED",
        "JOB_STATE_DELAYED",
        "JOB_STATE_FAILED",
    }

    job_id = first["jobs"][0]["jobId"]
    job = await viewer.get(f"/api/v1/queues/gw-emails/jobs/{job_id}", params={"full": "true"})
    called("GET", "/v1/queues/{queue}/jobs/{job_id}")
    assert job.status_code == 200, job.text
    assert job.json()["job"]["summary"]["jobId"] == job_id
    assert "ECONNREFUSED" in job.json()["job"]["failedReason"]

    collected = await gateway.client("operator").post(
        "/api/v1/collector:collectNow", json={"queues": ["gw-emails"]}
    )
    assert collected.status_code == 200, collected.text
    now = datetime.now(UTC) + timedelta(minutes=1)
    snaps = await viewer.get(
        "/api/v1/queues/gw-emails/snapshots",
        params={"startTime": (now - timedelta(hours=1)).isoformat(), "endTime": now.isoformat()},
    )
    called("GET", "/v1/queues/{queue}/snapshots")
    assert snaps.status_code == 200, snaps.text
    assert any(p.get("hasData") for p in snaps.json()["points"])


async def test_queue_actions_with_bodies(gateway: Gateway) -> None:
    queue = gateway.queue("gw-actions")
    await fail_some(gateway, queue, completed=1, failed=2)
    delayed = await queue.add("later", {"x": 1}, {"delay": 600_000})
    await queue.add("later", {"x": 2}, {"delay": 600_000})
    operator = gateway.client("operator", "olivia")
    admin = gateway.client("admin", "ada")

    paused = await operator.post("/api/v1/queues/gw-actions:pause", json={"reason": "deploy"})
    called("POST", "/v1/queues/{queue}:pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["changed"] is True and int(paused.json()["auditId"]) > 0
    again = (await operator.post("/api/v1/queues/gw-actions:pause", json={})).json()
    # A false flag is left out, per the proto3 JSON mapping.
    assert "changed" not in again
    resumed = await operator.post("/api/v1/queues/gw-actions:resume")
    called("POST", "/v1/queues/{queue}:resume")
    assert resumed.json()["changed"] is True

    retried = await operator.post("/api/v1/queues/gw-actions:retryFailed", json={"limit": 1})
    called("POST", "/v1/queues/{queue}:retryFailed")
    assert retried.json()["retried"] == "1"

    one = await operator.post(f"/api/v1/queues/gw-actions/jobs/{delayed.id}:promote", json={})
    called("POST", "/v1/queues/{queue}/jobs/{job_id}:promote")
    assert one.status_code == 200, one.text
    promoted = await operator.post("/api/v1/queues/gw-actions:promote", json={})
    called("POST", "/v1/queues/{queue}:promote")
    assert promoted.json()["promoted"] == "1"

    failed = (await operator.get("/api/v1/queues/gw-actions/jobs", params={"states": "failed"})).json()[
        "jobs"
    ]
    retry = await operator.post(f"/api/v1/queues/gw-actions/jobs/{failed[0]['jobId']}:retry", json={})
    called("POST", "/v1/queues/{queue}/jobs/{job_id}:retry")
    assert retry.json()["previousState"] == "JOB_STATE_FAILED"

    added = await operator.post(
        "/api/v1/queues/gw-actions/jobs",
        json={"name": "manual", "data": '{"to": "a@b.c"}', "delay": "120s", "attempts": 2},
    )
    called("POST", "/v1/queues/{queue}/jobs")
    assert added.status_code == 200, added.text
    new_job = added.json()["job"]
    assert new_job["name"] == "manual" and new_job["state"] == "JOB_STATE_DELAYED"

    cancelled = await admin.post(
        f"/api/v1/queues/gw-actions/jobs/{new_job['jobId']}:cancel", json={"reason": "test", "wait": "1s"}
    )
    called("POST", "/v1/queues/{queue}/jobs/{job_id}:cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["outcome"] == "CANCEL_OUTCOME_REMOVED"

    cleaned = await admin.post(
        "/api/v1/queues/gw-actions:clean",
        json={"state": "JOB_STATE_COMPLETED", "grace": "0s", "confirm": "gw-actions"},
    )
    called("POST", "/v1/queues/{queue}:clean")
    assert cleaned.status_code == 200, cleaned.text
    assert int(cleaned.json()["removed"]) >= 1

    drained = await admin.post(
        "/api/v1/queues/gw-actions:drain", json={"includeDelayed": True, "confirm": "gw-actions"}
    )
    called("POST", "/v1/queues/{queue}:drain")
    assert drained.status_code == 200, drained.text

    audit = await admin.get(
        "/api/v1/auditLogs",
        params={"queue": "gw-actions", "action": "queue_pause", "outcome": "SUCCEEDED", "pageSize": 10},
    )
    called("GET", "/v1/auditLogs")
    assert audit.status_code == 200, audit.text
    entries = audit.json()["auditLogs"]
    # Both pauses, newest first: the second changed nothing but was carried out all the same.
    assert [e["actor"] for e in entries] == ["olivia", "olivia"]
    assert "deploy" in str(entries[1]["parameters"])


async def test_worker_routes_and_commands(gateway: Gateway) -> None:
    await gateway.beat("gw-worker-1", ["gw-emails"])
    viewer = gateway.client("viewer")
    operator = gateway.client("operator")
    admin = gateway.client("admin")

    workers = (await viewer.get("/api/v1/workers", params={"status": "online", "queue": "gw-emails"})).json()
    called("GET", "/v1/workers")
    assert [w["report"]["workerId"] for w in workers["workers"]] == ["gw-worker-1"]

    summary = await viewer.get("/api/v1/workers:summary")
    called("GET", "/v1/workers:summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["online"] >= 1

    one = await viewer.get("/api/v1/workers/gw-worker-1")
    called("GET", "/v1/workers/{worker_id}")
    assert one.json()["worker"]["report"]["hostname"] == "gw-test-host"

    # This worker only beats and never answers: with no wait the command is reported as not yet done.
    quiet = await operator.post(
        "/api/v1/workers/gw-worker-1:quiet", json={"reason": "maintenance", "wait": "0s"}
    )
    called("POST", "/v1/workers/{worker_id}:quiet")
    assert quiet.status_code == 200, quiet.text
    assert quiet.json()["outcome"] == "COMMAND_OUTCOME_PENDING"
    command = quiet.json()["command"]
    assert command["type"].endswith("QUIET")

    fetched = await viewer.get(f"/api/v1/commands/{command['commandId']}")
    called("GET", "/v1/commands/{command_id}")
    assert fetched.json()["command"]["commandId"] == command["commandId"]

    resumed = await operator.post("/api/v1/workers/gw-worker-1:resume", json={"wait": "0.2s"})
    called("POST", "/v1/workers/{worker_id}:resume")
    assert resumed.status_code == 200, resumed.text

    refused = await admin.post("/api/v1/workers/gw-worker-1:stop", json={"confirm": "someone-else"})
    assert refused.status_code == 400
    assert refused.json()["error"]["status"] in ("INVALID_ARGUMENT", "FAILED_PRECONDITION")
    stopped = await admin.post("/api/v1/workers/gw-worker-1:stop", json={"confirm": "gw-worker-1"})
    called("POST", "/v1/workers/{worker_id}:stop")
    assert stopped.status_code == 200, stopped.text


async def test_worker_history_route(gateway: Gateway) -> None:
    # A worker id with a slash travels percent-encoded as one path segment.
    await gateway.beat("gw/history-1", ["gw-emails"])
    viewer = gateway.client("viewer")
    history = await viewer.get("/api/v1/workers/gw%2Fhistory-1/history")
    called("GET", "/v1/workers/{worker_id}/history")
    assert history.status_code == 200, history.text
    body = history.json()
    assert body["workerId"] == "gw/history-1" and body["step"] == "60s"
    [point] = body["points"]
    assert point["concurrency"] == 2 and point["time"].endswith(":00Z")
    before = await viewer.get(
        "/api/v1/workers/gw%2Fhistory-1/history", params={"endTime": "2001-01-01T00:00:00Z"}
    )
    assert before.status_code == 200 and before.json()["points"] == []
    unknown = await viewer.get("/api/v1/workers/gw-nobody/history")
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"


async def test_collector_routes(gateway: Gateway) -> None:
    gateway.queue("gw-collected")
    await gateway.queue("gw-collected").add("x", {})
    operator = gateway.client("operator")
    collected = await operator.post("/api/v1/collector:collectNow", json={"queues": ["gw-collected"]})
    called("POST", "/v1/collector:collectNow")
    assert collected.status_code == 200, collected.text
    assert [s["queue"] for s in collected.json()["snapshots"]] == ["gw-collected"]

    status = await operator.get("/api/v1/collector/status")
    called("GET", "/v1/collector/status")
    assert status.status_code == 200, status.text


async def test_incident_routes(gateway: Gateway) -> None:
    viewer, operator, admin = gateway.client("viewer"), gateway.client("operator"), gateway.client("admin")
    # A queue with a waiting job and no worker: the collection asks IncidentService to evaluate, and
    # the "no workers" rule opens a WORKER_DOWN incident for it.
    await gateway.queue("gw-unattended").add("x", {})
    await operator.post("/api/v1/collector:collectNow", json={"queues": ["gw-unattended"]})

    async def opened() -> bool:
        reply = await viewer.get("/api/v1/incidents", params={"queue": "gw-unattended", "openOnly": "true"})
        return reply.status_code == 200 and bool(reply.json()["incidents"])

    await until(opened, limit=10, what="an incident for the unattended queue")
    listed = await viewer.get("/api/v1/incidents", params={"queue": "gw-unattended", "pageSize": 10})
    called("GET", "/v1/incidents")
    [incident] = listed.json()["incidents"]
    assert incident["type"] == "INCIDENT_TYPE_WORKER_DOWN" and incident["queue"] == "gw-unattended"
    got = await viewer.get(f"/api/v1/incidents/{incident['id']}")
    called("GET", "/v1/incidents/{incident_id}")
    assert got.status_code == 200 and got.json()["incident"]["id"] == incident["id"]
    assert (await viewer.get("/api/v1/incidents/424242")).status_code == 404
    bad_id = await viewer.get("/api/v1/incidents/not-a-number")
    assert bad_id.status_code == 400 and "incident_id" in bad_id.json()["error"]["message"]
    # Still pending (the rule waits before paging anyone): nothing to acknowledge yet.
    assert incident["status"] == "INCIDENT_STATUS_PENDING"
    ack = await operator.post(f"/api/v1/incidents/{incident['id']}:acknowledge", json={"note": "looking"})
    called("POST", "/v1/incidents/{incident_id}:acknowledge")
    assert ack.status_code == 400 and ack.json()["error"]["status"] == "FAILED_PRECONDITION", ack.text
    # Resolving is for admins (403 for an operator); an admin must give a note.
    denied = await operator.post(f"/api/v1/incidents/{incident['id']}:resolve", json={"note": "fixed"})
    called("POST", "/v1/incidents/{incident_id}:resolve")
    assert denied.status_code == 403, denied.text
    no_note = await admin.post(f"/api/v1/incidents/{incident['id']}:resolve", json={})
    assert no_note.status_code == 400 and "note" in no_note.text
    resolved = await admin.post(
        f"/api/v1/incidents/{incident['id']}:resolve", json={"note": "worker started"}
    )
    assert resolved.status_code == 200, resolved.text
    body = resolved.json()["incident"]
    assert body["status"] == "INCIDENT_STATUS_RESOLVED" and body["resolveNote"] == "worker started"
    audit = await viewer.get("/api/v1/auditLogs", params={"entityId": incident["id"]})
    # The resolution, and the two invalid attempts before it (refused, on record as REFUSED).
    assert sorted((a["action"], a["outcome"]) for a in audit.json()["auditLogs"]) == [
        ("AUDIT_ACTION_INCIDENT_ACKNOWLEDGE", "AUDIT_OUTCOME_REFUSED"),
        ("AUDIT_ACTION_INCIDENT_RESOLVE", "AUDIT_OUTCOME_REFUSED"),
        ("AUDIT_ACTION_INCIDENT_RESOLVE", "AUDIT_OUTCOME_SUCCEEDED"),
    ]


async def test_flow_and_scheduler_routes(gateway: Gateway) -> None:
    flow = FlowProducer({"connection": gateway.redis_url, "prefix": gateway.settings.queue_prefix})
    try:
        tree = await flow.add(
            {
                "name": "parent",
                "queueName": "gw-flow",
                "data": {},
                "children": [{"name": "child", "queueName": "gw-flow", "data": {"n": i}} for i in range(3)],
            }
        )
    finally:
        await flow.close()
    assert tree is not None
    parent_id = tree["job"].id
    queue = gateway.queue("gw-flow")
    await queue.upsertJobScheduler("every-hour", {"every": 3_600_000}, "tick", {"x": 1})
    viewer, operator, admin = gateway.client("viewer"), gateway.client("operator"), gateway.client("admin")

    job = (await viewer.get(f"/api/v1/queues/gw-flow/jobs/{parent_id}")).json()["job"]
    assert job["dependencies"]["pending"] == "3" and job["summary"]["state"] == "JOB_STATE_WAITING_CHILDREN"
    children = await viewer.get(f"/api/v1/queues/gw-flow/jobs/{parent_id}/children", params={"pageSize": 2})
    called("GET", "/v1/queues/{queue}/jobs/{job_id}/children")
    assert children.status_code == 200, children.text
    body = children.json()
    assert body["totalSize"] == "3" and len(body["children"]) == 2 and body["nextPageToken"]
    assert body["children"][0]["kind"] == "CHILD_KIND_PENDING"
    too_wide = await viewer.get(
        f"/api/v1/queues/gw-flow/jobs/{parent_id}/children", params={"pageSize": 1000}
    )
    assert too_wide.status_code == 400 and "page_size" in too_wide.text

    removed = await operator.post(
        f"/api/v1/queues/gw-flow/jobs/{parent_id}:removePendingChildren", json={"confirm": parent_id}
    )
    called("POST", "/v1/queues/{queue}/jobs/{job_id}:removePendingChildren")
    assert removed.status_code == 200, removed.text
    assert removed.json()["removed"] == "3" and removed.json()["state"] == "JOB_STATE_WAITING"

    schedulers = await viewer.get("/api/v1/queues/gw-flow/jobSchedulers")
    called("GET", "/v1/queues/{queue}/jobSchedulers")
    assert schedulers.status_code == 200, schedulers.text
    (only,) = schedulers.json()["jobSchedulers"]
    assert only["schedulerId"] == "every-hour" and only["everyMs"] == "3600000"
    run = await operator.post("/api/v1/queues/gw-flow/jobSchedulers/every-hour:run", json={})
    called("POST", "/v1/queues/{queue}/jobSchedulers/{scheduler_id}:run")
    assert run.status_code == 200 and run.json()["job"]["name"] == "tick", run.text
    missing = await operator.post("/api/v1/queues/gw-flow/jobSchedulers/nope:run", json={})
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    gone = await admin.post(
        "/api/v1/queues/gw-flow/jobSchedulers/every-hour:remove", json={"confirm": "every-hour"}
    )
    called("POST", "/v1/queues/{queue}/jobSchedulers/{scheduler_id}:remove")
    assert gone.status_code == 200, gone.text
    assert (await viewer.get("/api/v1/queues/gw-flow/jobSchedulers")).json()["jobSchedulers"] == []


async def test_verb_suffix_and_method_resolution(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    # A literal :verb after a variable is its own route: GET on it is 405, not GetQueue("x:pause").
    wrong = await viewer.get("/api/v1/queues/gw-emails:pause")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["code"] == 405
    # A colon the client encodes is part of the name.
    encoded = await viewer.get("/api/v1/queues/gw%3Aemails")
    assert encoded.status_code in (400, 404)
    assert "gw:emails" in encoded.json()["error"]["message"] or encoded.status_code == 400


async def test_search_bulk_export_and_obliterate_routes(gateway: Gateway) -> None:
    queue = gateway.queue("gw-bulk")
    await fail_some(gateway, queue, completed=1, failed=3)
    await queue.add("note", {"memo": "Quarterly REPORT"})
    viewer, operator, admin = gateway.client("viewer"), gateway.client("operator"), gateway.client("admin")

    found = await viewer.get("/api/v1/jobs:search", params={"text": "quarterly", "queues": "gw-bulk"})
    called("GET", "/v1/jobs:search")
    assert found.status_code == 200, found.text
    body = found.json()
    assert [h["job"]["name"] for h in body["hits"]] == ["note"] and body["hits"][0]["matched"] == "data"
    assert body["scanned"] == body["total"] == "5"
    wide = await viewer.get("/api/v1/jobs:search")
    assert wide.status_code == 400 and "text" in wide.json()["error"]["message"]

    started = await operator.post(
        "/api/v1/queues/gw-bulk/jobs:bulk",
        json={"action": "BULK_JOB_ACTION_RETRY", "allMatching": True, "states": ["JOB_STATE_FAILED"]},
    )
    called("POST", "/v1/queues/{queue}/jobs:bulk")
    assert started.status_code == 200, started.text
    operation_id = started.json()["operation"]["operationId"]

    async def finished() -> bool:
        reply = await viewer.get(f"/api/v1/bulkOperations/{operation_id}")
        return (
            reply.status_code == 200 and reply.json()["operation"]["state"] != "BULK_OPERATION_STATE_RUNNING"
        )

    await until(finished, limit=10, what="the bulk retry finishing")
    done = (await viewer.get(f"/api/v1/bulkOperations/{operation_id}")).json()["operation"]
    called("GET", "/v1/bulkOperations/{operation_id}")
    assert (done["state"], done["succeeded"], done["total"]) == ("BULK_OPERATION_STATE_SUCCEEDED", "3", "3")
    assert (await viewer.get("/api/v1/bulkOperations/unknown")).status_code == 404

    csv_export = await viewer.get("/api/v1/queues/gw-bulk/jobs:export", params={"format": "csv"})
    called("GET", "/v1/queues/{queue}/jobs:export")
    assert csv_export.status_code == 200, csv_export.text
    assert csv_export.headers["content-type"].startswith("text/csv")
    assert csv_export.text.splitlines()[0].startswith("queue,job_id,name,state")
    assert len(csv_export.text.splitlines()) == 6
    lines = await viewer.get("/api/v1/queues/gw-bulk/jobs:export", params={"namePrefix": "note"})
    assert lines.headers["content-type"] == "application/x-ndjson"
    assert [json.loads(line)["name"] for line in lines.text.splitlines()] == ["note"]
    no_data = await viewer.get("/api/v1/queues/gw-bulk/jobs:export", params={"includeData": "true"})
    assert no_data.status_code == 403 and no_data.json()["error"]["status"] == "PERMISSION_DENIED"
    with_data = await admin.get(
        "/api/v1/queues/gw-bulk/jobs:export", params={"includeData": "true", "namePrefix": "note"}
    )
    assert json.loads(json.loads(with_data.text)["data"]) == {"memo": "Quarterly REPORT"}
    missing = await viewer.get("/api/v1/queues/gw-nowhere/jobs:export")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"

    wrong = await admin.post("/api/v1/queues/gw-bulk:obliterate", json={"confirm": "gw"})
    called("POST", "/v1/queues/{queue}:obliterate")
    assert wrong.status_code == 400 and "confirm" in wrong.json()["error"]["message"]
    gone = await admin.post("/api/v1/queues/gw-bulk:obliterate", json={"confirm": "gw-bulk"})
    assert gone.status_code == 200, gone.text
    assert (await viewer.get("/api/v1/queues/gw-bulk/jobs")).status_code == 404


async def test_deduplication_route(gateway: Gateway) -> None:
    # python bullmq writes the same `de:<id>` key and `deid` field as Node BullMQ.
    job = await gateway.queue("gw-dedup").add("x", {}, {"deduplication": {"id": "order/7"}})
    viewer = gateway.client("viewer")
    found = await viewer.get("/api/v1/queues/gw-dedup/deduplication/order%2F7")
    called("GET", "/v1/queues/{queue}/deduplication/{deduplication_id}")
    assert found.status_code == 200, found.text
    assert found.json()["job"]["jobId"] == job.id
    assert found.json()["job"]["deduplicationId"] == "order/7"
    missing = await viewer.get("/api/v1/queues/gw-dedup/deduplication/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
    too_long = await viewer.get("/api/v1/queues/gw-dedup/deduplication/" + "x" * 513)
    assert too_long.status_code == 400 and "deduplication_id" in too_long.json()["error"]["message"]

    released = await gateway.client("operator").post(
        f"/api/v1/queues/gw-dedup/jobs/{job.id}:releaseDeduplication", json={}
    )
    called("POST", "/v1/queues/{queue}/jobs/{job_id}:releaseDeduplication")
    assert released.status_code == 200, released.text
    assert released.json()["deduplicationId"] == "order/7"
    assert (await viewer.get("/api/v1/queues/gw-dedup/deduplication/order%2F7")).status_code == 404


async def test_silence_and_maintenance_window_routes(gateway: Gateway) -> None:
    viewer, operator = gateway.client("viewer"), gateway.client("operator")
    until_time = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    silence = {"matchers": {"queueGlob": "gw-pay*"}, "endTime": until_time, "comment": "deploy"}
    created = await operator.post("/api/v1/silences", json=silence)
    called("POST", "/v1/silences")
    assert created.status_code == 200, created.text
    silence_id = created.json()["silence"]["id"]
    assert created.json()["silence"]["author"]
    listed = await viewer.get("/api/v1/silences")
    called("GET", "/v1/silences")
    assert [s["id"] for s in listed.json()["silences"]] == [silence_id]
    assert (await viewer.post(f"/api/v1/silences/{silence_id}:expire", json={})).status_code == 403
    expired = await operator.post(f"/api/v1/silences/{silence_id}:expire", json={})
    called("POST", "/v1/silences/{silence_id}:expire")
    assert expired.status_code == 200 and expired.json()["silence"]["state"] == "SILENCE_STATE_EXPIRED"
    bad = await operator.post("/api/v1/silences", json={**silence, "matchers": {"queueGlob": "[oops"}})
    assert bad.status_code == 400 and "queue_glob" in bad.json()["error"]["message"]

    window = {
        "matchers": {"queueGlob": "gw-*"},
        "weekdays": ["SUN"],
        "startTimeOfDay": "02:00",
        "endTimeOfDay": "04:00",
        "timeZone": "Asia/Seoul",
        "comment": "weekly database upgrade",
    }
    made = await operator.post("/api/v1/maintenanceWindows", json=window)
    called("POST", "/v1/maintenanceWindows")
    assert made.status_code == 200, made.text
    window_id = made.json()["maintenanceWindow"]["id"]
    windows = await viewer.get("/api/v1/maintenanceWindows")
    called("GET", "/v1/maintenanceWindows")
    assert [w["id"] for w in windows.json()["maintenanceWindows"]] == [window_id]
    deleted = await operator.delete(f"/api/v1/maintenanceWindows/{window_id}")
    called("DELETE", "/v1/maintenanceWindows/{window_id}")
    assert deleted.status_code == 200, deleted.text
    assert (await viewer.get("/api/v1/maintenanceWindows")).json().get("maintenanceWindows", []) == []


async def test_alerting_config_routes(gateway: Gateway) -> None:
    viewer, admin = gateway.client("viewer"), gateway.client("admin")
    read = await viewer.get("/api/v1/alertingConfig")
    called("GET", "/v1/alertingConfig")
    assert read.status_code == 200, read.text
    config = read.json()["config"]
    revision = int(config["revision"])
    assert revision >= 1 and config["defaults"]["failureRateThreshold"] > 0
    config["defaults"]["backlogThreshold"] = "4321"
    config["comment"] = "over HTTP"
    body = {"config": config, "expectedRevision": str(revision)}
    assert (await viewer.put("/api/v1/alertingConfig", json=body)).status_code == 403
    updated = await admin.put("/api/v1/alertingConfig", json=body)
    called("PUT", "/v1/alertingConfig")
    assert updated.status_code == 200, updated.text
    assert int(updated.json()["config"]["revision"]) == revision + 1
    stale = await admin.put("/api/v1/alertingConfig", json=body)
    assert stale.status_code == 409, stale.text
    listed = await viewer.get("/api/v1/alertingConfig/revisions", params={"pageSize": 1})
    called("GET", "/v1/alertingConfig/revisions")
    assert [int(r["revision"]) for r in listed.json()["revisions"]] == [revision + 1]
    missing = await admin.post("/api/v1/alertingConfig/channels/nope:test", json={})
    called("POST", "/v1/alertingConfig/channels/{channel}:test")
    assert missing.status_code == 404, missing.text


def test_every_route_called() -> None:
    if not CALLED:
        pytest.skip("checks the tests above; run the whole module")
    built = {(r.verb, r.template.template) for r in build_routes()}
    assert built - CALLED == set(), "routes without a test"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/workers:summary", "GetWorkerSummary"),
        ("/v1/workers/w-1", "GetWorker"),
        ("/v1/queues/a/jobs/7", "GetJob"),
        ("/v1/queues/a:b", "GetQueue"),
        ("/v1/queues/a%2Fb", "GetQueue"),
    ],
)
def test_template_resolution(path: str, expected: str) -> None:
    router = ApiRouter(build_routes(), "/api", None, None)  # type: ignore[arg-type]
    resolved = router.resolve("GET", path)
    assert isinstance(resolved, tuple) and resolved[0].method.name == expected
    if path.endswith("%2Fb"):
        assert resolved[1] == {"queue": "a/b"}


def test_query_mapping_types() -> None:
    request = pb.GetQueueTrendRequest()
    transcode.apply_query(
        request,
        [("hours", "0"), ("startTime", "2031-03-04T10:00:00Z"), ("end_time", "2031-03-04T11:00:00+00:00")],
    )
    transcode.apply_query(request, [("step", "300s")])
    assert request.start_time.seconds == 1930384800 and request.step.seconds == 300
    audit = pb.ListAuditLogsRequest()
    transcode.apply_query(audit, [("action", "QUEUE_PAUSE"), ("outcome", "3")])
    assert audit.action == pb.AUDIT_ACTION_QUEUE_PAUSE and audit.outcome == pb.AUDIT_OUTCOME_DENIED
    job = pb.GetJobRequest()
    transcode.apply_query(job, [("full", "TRUE")])
    assert job.full is True
    assert PathTemplate.parse("/v1/queues/{queue}:pause").openapi_path() == "/v1/queues/{queue}:pause"
    repeated = [f for f in pb.ListJobsRequest.DESCRIPTOR.fields if f.is_repeated]
    assert [f.type for f in repeated] == [FieldDescriptor.TYPE_ENUM]
