"""IncidentService end to end: heartbeat, collector, monitor and incidents in one gRPC server, on a real
BullMQ queue with a failing worker. A snapshot with >5% failures over >=20 jobs makes HIGH_FAILURE_RATE
ACTIVE within 5 s; acknowledge and resolve are audited; WatchIncidents delivers and resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker

from tests.support.bull import until
from tests.support.suites import start_local_suite
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.peer import Peer
from workermon_incidents import service as incident_service
from workermon_incidents.rules import WorkerState


def shifted() -> float:
    """The clock a minute ahead: "the last full minute" is then the current one, where the jobs ran."""
    return time.time() + 60


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[dict[str, Any]]:
    local = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "collector", "monitor", "incidents"),
        clock=shifted,
        incident_options={"feed_poll_seconds": 0.2},
        failure_rate_pending_minutes=0,
        incident_eval_interval_seconds=3600,
    )
    channels: list[grpc.aio.Channel] = []

    def channel(role: str, subject: str | None = None) -> grpc.aio.Channel:
        opened = open_channel(local.target, authority.mint(subject or f"{role}-user", role))
        channels.append(opened)
        return opened

    queue = Queue("payments", {"connection": redis_url, "prefix": local.queue_prefix})
    yield {
        "parts": local.parts["incidents"],
        "collector": local.parts["collector"],
        "channel": channel,
        "queue": queue,
        "redis_url": redis_url,
        "queue_prefix": local.queue_prefix,
    }
    await queue.close()
    for opened in channels:
        await opened.close()
    await local.stop()


async def run_jobs(suite: dict[str, Any], completed: int, failed: int) -> None:
    queue: Queue = suite["queue"]

    async def process(job: Job, token: str) -> Any:
        if job.data.get("fail"):
            raise RuntimeError("connect ECONNREFUSED 10.0.0.1:5432")
        return {"ok": True}

    for i in range(completed):
        await queue.add("ok", {"i": i})
    for i in range(failed):
        await queue.add("bad", {"i": i, "fail": True})
    # No follower has seen the new queue yet: the collection that first does counts it all the same.
    worker = Worker(
        queue.name,
        process,
        {"connection": suite["redis_url"], "prefix": suite["queue_prefix"], "concurrency": 5},
    )

    async def done() -> bool:
        counts = await queue.getJobCounts("completed", "failed")
        return bool(counts["completed"] == completed and counts["failed"] == failed)

    try:
        await until(done, what="jobs finished")
    finally:
        await worker.close()


async def test_failure_rate_fires_is_acknowledged_resolved_audited_and_watched(suite: dict[str, Any]) -> None:
    # The jobs and the collection must fall in one minute; near its end, wait for the next one.
    second = datetime.now(UTC).second
    if second > 40:
        await asyncio.sleep(61 - second)
    await run_jobs(suite, completed=20, failed=5)

    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    admin = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "adam"))
    viewer = pb_grpc.IncidentServiceStub(suite["channel"]("viewer"))
    watched: list[pb.WatchIncidentsResponse] = []

    async def watch() -> None:
        async for item in viewer.WatchIncidents(pb.WatchIncidentsRequest()):
            watched.append(item)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.3)  # the stream is open before anything happens

    # One incident through its life: each step goes on from the state the one before left.
    incident_id = await _collect_until_it_fires_once(suite, viewer, operator)
    await _acknowledge_then_resolve(operator, admin, incident_id)
    await _check_audit_entries(suite, incident_id)
    mine = await _watched_changes(watched, incident_id)
    watcher.cancel()
    await _check_resumed_watch(viewer, incident_id, mine)


async def _collect_until_it_fires_once(
    suite: dict[str, Any], viewer: pb_grpc.IncidentServiceStub, operator: pb_grpc.IncidentServiceStub
) -> int:
    """Collect the minute, wait for HIGH_FAILURE_RATE to fire from it, once; the incident's id."""
    collector = col_grpc.CollectorServiceStub(suite["channel"]("operator"))
    collected = await collector.CollectNow(col_pb.CollectNowRequest(queues=["payments"]))
    snapshot_written = time.perf_counter()
    [row] = collected.snapshots
    assert (row.completed_in_minute, row.failed_in_minute) == (20, 5)

    # No explicit Evaluate: the collector asks IncidentService to evaluate the rows it has just written.
    wanted = pb.ListIncidentsRequest(
        queue="payments", type=pb.INCIDENT_TYPE_HIGH_FAILURE_RATE, open_only=True
    )

    async def fired() -> bool:
        page = await viewer.ListIncidents(wanted)
        return any(i.status == pb.INCIDENT_STATUS_ACTIVE for i in page.incidents)

    await until(fired, limit=5, what="HIGH_FAILURE_RATE active")
    latency = time.perf_counter() - snapshot_written
    [found] = (await viewer.ListIncidents(wanted)).incidents
    incident_id = found.id
    got = await viewer.GetIncident(pb.GetIncidentRequest(incident_id=incident_id))
    overview = await mon_grpc.MonitorServiceStub(suite["channel"]("viewer")).GetOverview(
        mon_pb.GetOverviewRequest()
    )
    assert [(a.incident_id, a.type, a.queue) for a in overview.active_incidents] == [
        (str(incident_id), "HIGH_FAILURE_RATE", "payments")
    ]
    print(f"\nHIGH_FAILURE_RATE: satisfying snapshot written -> ACTIVE in {latency * 1000:.1f} ms")
    assert got.incident.status == pb.INCIDENT_STATUS_ACTIVE and latency < 5.0
    incident = got.incident
    assert incident.queue == "payments" and incident.severity == pb.SEVERITY_CRITICAL
    assert incident.affected_jobs == 5 and incident.value == pytest.approx(0.2) and incident.threshold == 0.05
    assert "5 of 25 jobs failed" in incident.description and incident.recommended_action
    assert [e.kind for e in got.timeline] == [pb.INCIDENT_EVENT_KIND_FIRED]

    # Evaluating the same minute again changes nothing (dedup).
    again = await operator.Evaluate(pb.EvaluateRequest(minute_time=collected.minute_time))
    assert not [c for c in again.changes if c.incident.id == incident_id]

    listed = await viewer.ListIncidents(pb.ListIncidentsRequest(queue="payments", open_only=True))
    assert [i.id for i in listed.incidents] == [incident_id]
    return incident_id


async def _acknowledge_then_resolve(
    operator: pb_grpc.IncidentServiceStub, admin: pb_grpc.IncidentServiceStub, incident_id: int
) -> None:
    """The operator acknowledges; only an admin resolves, and only with a note."""
    acked = await operator.AcknowledgeIncident(
        pb.AcknowledgeIncidentRequest(incident_id=incident_id, note="on it")
    )
    assert (
        acked.incident.status == pb.INCIDENT_STATUS_ACKNOWLEDGED
        and acked.incident.acknowledged_by == "olivia"
    )
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await operator.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="x"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as no_note:
        await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id))
    assert no_note.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    resolved = await admin.ResolveIncident(
        pb.ResolveIncidentRequest(incident_id=incident_id, note="database credentials rotated")
    )
    assert resolved.incident.status == pb.INCIDENT_STATUS_RESOLVED and resolved.incident.resolved_by == "adam"


async def _check_audit_entries(suite: dict[str, Any], incident_id: int) -> None:
    """MonitorService's audit log holds the acknowledgement and the resolution, by whom they were made."""
    monitor = mon_grpc.MonitorServiceStub(suite["channel"]("viewer"))
    audit = await monitor.ListAuditLogs(mon_pb.ListAuditLogsRequest(entity_id=str(incident_id)))
    entries = {(a.action, a.actor, a.role, a.outcome) for a in audit.audit_logs}
    assert entries == {
        (mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, "olivia", "operator", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "adam", "admin", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
        # The operator's attempt to resolve, refused for the role, is on record too.
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "olivia", "operator", mon_pb.AUDIT_OUTCOME_DENIED),
        # So is the admin's attempt without a note, refused as invalid.
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "adam", "admin", mon_pb.AUDIT_OUTCOME_REFUSED),
    }
    assert all(a.entity_type == "incident" for a in audit.audit_logs)
    assert all(a.queue == "payments" for a in audit.audit_logs if a.outcome == mon_pb.AUDIT_OUTCOME_SUCCEEDED)


async def _watched_changes(
    watched: list[pb.WatchIncidentsResponse], incident_id: int
) -> list[pb.WatchIncidentsResponse]:
    """The incident's changes as WatchIncidents delivered them: fired, acknowledged, resolved."""

    async def delivered() -> bool:
        return len([w for w in watched if w.incident.id == incident_id]) >= 3

    await until(delivered, limit=5, what="watched changes")
    mine = [w for w in watched if w.incident.id == incident_id]
    assert [w.event.kind for w in mine] == [
        pb.INCIDENT_EVENT_KIND_FIRED,
        pb.INCIDENT_EVENT_KIND_ACKNOWLEDGED,
        pb.INCIDENT_EVENT_KIND_RESOLVED,
    ]
    assert [w.incident.status for w in mine] == [
        pb.INCIDENT_STATUS_ACTIVE,
        pb.INCIDENT_STATUS_ACKNOWLEDGED,
        pb.INCIDENT_STATUS_RESOLVED,
    ]
    return mine


async def _check_resumed_watch(
    viewer: pb_grpc.IncidentServiceStub, incident_id: int, mine: list[pb.WatchIncidentsResponse]
) -> None:
    """Resuming after the first change replays the rest, in order."""
    resumed: list[pb.WatchIncidentsResponse] = []
    stream = viewer.WatchIncidents(pb.WatchIncidentsRequest(after_event_id=mine[0].event.id))
    async for item in stream:
        resumed.append(item)
        if item.event.id == mine[-1].event.id:
            break
    stream.cancel()
    assert [r.event.id for r in resumed if r.incident.id == incident_id] == [w.event.id for w in mine[1:]]


async def test_acknowledge_is_refused_when_the_audit_log_cannot_be_written(suite: dict[str, Any]) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    now = datetime.fromtimestamp(shifted(), tz=UTC)
    lost = WorkerState(
        "w-lost", False, now - timedelta(minutes=5), "missed beats", "host-1", ("payments",), 3
    )
    [change] = await parts.engine.evaluate_workers([lost])
    # MonitorService unreachable: nothing may change without its audit entry.
    parts.servicer.monitor = Peer("127.0.0.1:9", mon_grpc.MonitorServiceStub, lambda: "token")
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=change.incident.id))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    got = await operator.GetIncident(pb.GetIncidentRequest(incident_id=change.incident.id))
    assert (
        got.incident.status == pb.INCIDENT_STATUS_ACTIVE and got.incident.type == pb.INCIDENT_TYPE_WORKER_DOWN
    )
    await parts.servicer.monitor.close()
