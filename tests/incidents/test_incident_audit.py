"""Acknowledge and resolve against the audit log, end to end (monitor and incidents in one gRPC server, on
SQLite): an entry is written only for a change that happened, a change whose entry cannot be written is
taken back and never notified, refusals for the role are on record as DENIED and invalid requests as
REFUSED, each naming the incident.
"""

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
from sqlalchemy import text

from tests.support.suites import start_local_suite
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info
from workermon_core.peer import Peer
from workermon_incidents import service as incident_service
from workermon_incidents.incident import EventKind, IncidentStatus
from workermon_incidents.rules import WorkerState
from workermon_incidents.transitions import Transition


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
        incident_eval_interval_seconds=3600,
    )
    channels: list[grpc.aio.Channel] = []

    def channel(role: str, subject: str | None = None) -> grpc.aio.Channel:
        opened = open_channel(local.target, authority.mint(subject or f"{role}-user", role))
        channels.append(opened)
        return opened

    parts: incident_service.IncidentParts = local.parts["incidents"]
    emitted: list[Transition] = []

    async def record(transition: Transition) -> None:
        emitted.append(transition)

    parts.engine.on_transition(record)
    yield {"parts": parts, "channel": channel, "emitted": emitted, "engine": local.engine}
    for opened in channels:
        await opened.close()
    await local.stop()


async def worker_down(parts: incident_service.IncidentParts, worker_id: str = "w-lost") -> int:
    """An ACTIVE WORKER_DOWN incident; its id."""
    now = datetime.fromtimestamp(time.time(), tz=UTC)
    lost = WorkerState(
        worker_id, False, now - timedelta(minutes=5), "missed beats", "host-1", ("payments",), 3
    )
    [change] = await parts.engine.evaluate_workers([lost])
    assert change.incident.status is IncidentStatus.ACTIVE
    return int(change.incident.id)


async def entries(suite: dict[str, Any], incident_id: int) -> list[mon_pb.AuditLog]:
    monitor = mon_grpc.MonitorServiceStub(suite["channel"]("viewer"))
    reply = await monitor.ListAuditLogs(mon_pb.ListAuditLogsRequest(entity_id=str(incident_id)))
    return [a for a in reply.audit_logs if a.entity_type == "incident"]


def reason_of(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason the server gave."""
    info = error_info(error)
    return info.reason if info is not None else ""


async def test_a_change_whose_audit_entry_cannot_be_written_is_taken_back_and_not_notified(
    suite: dict[str, Any],
) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    incident_id = await worker_down(parts)
    before = await parts.store.get(incident_id)
    timeline_before = await parts.store.timeline(incident_id)
    suite["emitted"].clear()
    # MonitorService's audit log out of reach.
    working = parts.servicer.monitor
    parts.servicer.monitor = Peer("127.0.0.1:9", mon_grpc.MonitorServiceStub, lambda: "token")
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    admin = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "adam"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as acked:
            await operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id))
        with pytest.raises(grpc.aio.AioRpcError) as resolved:
            await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="gone"))
    finally:
        await parts.servicer.monitor.close()
        parts.servicer.monitor = working
    for caught in (acked, resolved):
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(caught.value) == "AUDIT_UNAVAILABLE"
        assert "nothing was changed" in (caught.value.details() or "")

    # Nothing changed: the status, the decisions, the timeline; nothing was emitted.
    after = await parts.store.get(incident_id)
    assert before is not None and after is not None
    assert (
        after.status is IncidentStatus.ACTIVE and after.acknowledged_by is None and after.resolved_by is None
    )
    assert after.decisions == before.decisions and after.held_event_id == before.held_event_id
    assert [e.id for e in await parts.store.timeline(incident_id)] == [e.id for e in timeline_before]
    assert suite["emitted"] == []

    # With the audit log back, the same requests succeed, each audited once, with the status before.
    await operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id, note="on it"))
    await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="replaced the host"))
    assert [t.kind for t in suite["emitted"]] == ["ACKNOWLEDGED", "RESOLVED"]
    written = {(a.action, a.outcome, a.result["status_before"]) for a in await entries(suite, incident_id)}
    assert written == {
        (mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, mon_pb.AUDIT_OUTCOME_SUCCEEDED, "ACTIVE"),
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, mon_pb.AUDIT_OUTCOME_SUCCEEDED, "ACKNOWLEDGED"),
    }
    kinds = [e.kind for e in await parts.store.timeline(incident_id)]
    assert kinds.count(EventKind.ACKNOWLEDGED) == 1 and kinds.count(EventKind.RESOLVED) == 1


async def test_a_change_whose_request_never_sent_its_entry_is_audited_once_by_the_sweep(
    suite: dict[str, Any],
) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    incident_id = await worker_down(parts)
    send = parts.servicer.send_audit
    gate = asyncio.Event()

    async def stalled(request: bytes) -> None:
        # The request stops after its commit, as a process that died or hangs would.
        await gate.wait()
        await send(request)

    parts.servicer.send_audit = stalled  # type: ignore[method-assign]
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    acknowledging = asyncio.ensure_future(
        operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id, note="on it"))
    )
    far = datetime(2100, 1, 1, tzinfo=UTC)
    for _ in range(500):
        if await parts.store.audits_before(far):
            break
        await asyncio.sleep(0.01)
    current = await parts.store.get(incident_id)
    assert current is not None and current.status is IncidentStatus.ACKNOWLEDGED
    assert await entries(suite, incident_id) == []

    # The sweep (here without its grace) writes the kept entry to the real audit log...
    assert await parts.engine.send_kept_audits(send, grace=timedelta(0)) == 1
    (written,) = await entries(suite, incident_id)
    assert (written.action, written.actor, written.role) == (
        mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE,
        "olivia",
        "operator",
    )
    assert written.result["status_before"] == "ACTIVE" and written.parameters["note"] == "on it"
    assert datetime.fromisoformat(str(written.result["changed_at"])) == current.acknowledge_time
    # ...and the request, going on, sends it again under the same request id: still one entry.
    gate.set()
    reply = await acknowledging
    assert reply.incident.status == pb.INCIDENT_STATUS_ACKNOWLEDGED
    assert [a.id for a in await entries(suite, incident_id)] == [written.id]
    assert await parts.store.audits_before(far) == []


async def test_a_change_the_database_refuses_leaves_no_audit_entry(suite: dict[str, Any]) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    incident_id = await worker_down(parts)
    suite["emitted"].clear()
    # A failure of the incident database in the middle of the change (after the incident's update).
    async with suite["engine"].begin() as conn:
        await conn.execute(
            text(
                "CREATE TRIGGER injected_failure BEFORE INSERT ON incident_events "
                "WHEN NEW.kind IN ('ACKNOWLEDGED', 'RESOLVED') "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        )
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    admin = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "adam"))
    with pytest.raises(grpc.aio.AioRpcError) as acked:
        await operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id))
    with pytest.raises(grpc.aio.AioRpcError) as resolved:
        await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="gone"))
    for caught in (acked, resolved):
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason_of(caught.value) == "DATABASE_UNAVAILABLE"

    assert await entries(suite, incident_id) == []
    after = await parts.store.get(incident_id)
    assert after is not None and after.status is IncidentStatus.ACTIVE
    assert suite["emitted"] == []


async def test_refused_attempts_are_audited_naming_the_incident(suite: dict[str, Any]) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    incident_id = await worker_down(parts)
    viewer = pb_grpc.IncidentServiceStub(suite["channel"]("viewer", "vera"))
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    admin = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "adam"))

    # The role: a viewer may not acknowledge, an operator may not resolve.
    with pytest.raises(grpc.aio.AioRpcError) as denied_ack:
        await viewer.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id, note="mine"))
    with pytest.raises(grpc.aio.AioRpcError) as denied_resolve:
        await operator.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="fixed"))
    assert denied_ack.value.code() == denied_resolve.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Invalid: no note to resolve with; acknowledging what is resolved.
    with pytest.raises(grpc.aio.AioRpcError) as no_note:
        await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id))
    assert no_note.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="host replaced"))
    with pytest.raises(grpc.aio.AioRpcError) as too_late:
        await operator.AcknowledgeIncident(pb.AcknowledgeIncidentRequest(incident_id=incident_id))
    assert too_late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # Resolving it again asks for what already holds (PagerDuty's webhook echoing our resolve): refused,
    # but not on record.
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await admin.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="again"))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    written = await entries(suite, incident_id)
    assert all(a.entity_id == str(incident_id) for a in written)
    assert {(a.action, a.actor, a.role, a.outcome) for a in written} == {
        (mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, "vera", "viewer", mon_pb.AUDIT_OUTCOME_DENIED),
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "olivia", "operator", mon_pb.AUDIT_OUTCOME_DENIED),
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "adam", "admin", mon_pb.AUDIT_OUTCOME_REFUSED),
        (mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE, "adam", "admin", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
        (mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, "olivia", "operator", mon_pb.AUDIT_OUTCOME_REFUSED),
    }
    refused = {a.action: a for a in written if a.outcome == mon_pb.AUDIT_OUTCOME_REFUSED}
    assert refused[mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE].result["field"] == "note"
    assert refused[mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE].result["reason"] == "INCIDENT_STATUS"


async def test_two_admins_resolving_at_once_leave_one_change_and_one_entry(suite: dict[str, Any]) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    incident_id = await worker_down(parts)
    suite["emitted"].clear()
    adam = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "adam"))
    alice = pb_grpc.IncidentServiceStub(suite["channel"]("admin", "alice"))

    outcomes = await asyncio.gather(
        adam.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="host replaced")),
        alice.ResolveIncident(pb.ResolveIncidentRequest(incident_id=incident_id, note="it came back")),
        return_exceptions=True,
    )

    won = [o for o in outcomes if isinstance(o, pb.ResolveIncidentResponse)]
    lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1
    assert lost[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    winner = won[0].incident.resolved_by
    written = {(a.actor, a.outcome) for a in await entries(suite, incident_id)}
    # The other found it resolved already, as they wanted: no attempt worth an entry.
    assert written == {(winner, mon_pb.AUDIT_OUTCOME_SUCCEEDED)}
    assert [t.kind for t in suite["emitted"]] == ["RESOLVED"]
    kinds = [e.kind for e in await parts.store.timeline(incident_id)]
    assert kinds.count(EventKind.RESOLVED) == 1


async def test_silence_and_window_changes_whose_entry_cannot_be_written_are_taken_back(
    suite: dict[str, Any],
) -> None:
    parts: incident_service.IncidentParts = suite["parts"]
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    now = datetime.now(UTC) + timedelta(minutes=1)
    silence = pb.Silence(matchers=pb.SilenceMatchers(queue_glob="pay*"), comment="deploy")
    silence.end_time.FromDatetime(now + timedelta(hours=1))
    window = pb.MaintenanceWindow(
        matchers=pb.SilenceMatchers(queue_glob="batch-*"),
        weekdays=["MON"],
        start_time_of_day="02:00",
        end_time_of_day="03:00",
        time_zone="UTC",
        comment="backups",
    )
    active = (await operator.CreateSilence(pb.CreateSilenceRequest(silence=silence))).silence
    kept = (
        await operator.CreateMaintenanceWindow(pb.CreateMaintenanceWindowRequest(maintenance_window=window))
    ).maintenance_window

    async def listed() -> tuple[list[tuple[int, int]], list[int]]:
        silences = (await operator.ListSilences(pb.ListSilencesRequest())).silences
        windows = (
            await operator.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
        ).maintenance_windows
        return [(s.id, s.state) for s in silences], [w.id for w in windows]

    before = await listed()
    working = parts.servicer.monitor
    parts.servicer.monitor = Peer("127.0.0.1:9", mon_grpc.MonitorServiceStub, lambda: "token")
    try:
        calls = [
            operator.CreateSilence(pb.CreateSilenceRequest(silence=silence)),
            operator.ExpireSilence(pb.ExpireSilenceRequest(silence_id=active.id)),
            operator.CreateMaintenanceWindow(pb.CreateMaintenanceWindowRequest(maintenance_window=window)),
            operator.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(window_id=kept.id)),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert reason_of(caught.value) == "AUDIT_UNAVAILABLE"
    finally:
        await parts.servicer.monitor.close()
        parts.servicer.monitor = working

    # Nothing changed: no new silence or window, the silence still active, the window still there (same
    # id), and no entry left in the outbox.
    assert await listed() == before
    assert await parts.store.audits_before(datetime(2100, 1, 1, tzinfo=UTC)) == []
    # With the audit log back the same changes go through, each on record once.
    expired = (await operator.ExpireSilence(pb.ExpireSilenceRequest(silence_id=active.id))).silence
    assert expired.state == pb.SILENCE_STATE_EXPIRED
    await operator.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(window_id=kept.id))
    monitor = mon_grpc.MonitorServiceStub(suite["channel"]("viewer"))
    written = (await monitor.ListAuditLogs(mon_pb.ListAuditLogsRequest(actor="olivia"))).audit_logs
    actions = sorted((a.action, a.entity_id) for a in written if a.outcome == mon_pb.AUDIT_OUTCOME_SUCCEEDED)
    assert actions == sorted(
        [
            (mon_pb.AUDIT_ACTION_SILENCE_CREATE, str(active.id)),
            (mon_pb.AUDIT_ACTION_SILENCE_EXPIRE, str(active.id)),
            (mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_CREATE, str(kept.id)),
            (mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_DELETE, str(kept.id)),
        ]
    )
    assert all("changed_at" in a.result for a in written)
