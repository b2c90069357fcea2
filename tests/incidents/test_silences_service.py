"""Silence RPCs end to end (the suite of test_service.py): roles, fields named in refusals, AIP-158 pages
with the state filter, early expiry, and the audit entries MonitorService keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from tests.support.bull import until
from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.protos import stamp

from .test_service import suite

__all__ = ["suite"]  # the fixture, shared with test_service.py


def silence(minutes_from: float = 0, minutes_to: float = 60, **matchers: Any) -> pb.Silence:
    # The suite's clock runs a minute ahead of the wall clock.
    now = datetime.now(UTC) + timedelta(minutes=1)
    message = pb.Silence(
        matchers=pb.SilenceMatchers(**(matchers or {"queue_glob": "pay*"})),
        end_time=stamp(now + timedelta(minutes=minutes_to)),
        comment="deploy",
    )
    if minutes_from:
        message.start_time.CopyFrom(stamp(now + timedelta(minutes=minutes_from)))
    return message


async def refused(call: Any, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


async def test_silences_are_created_listed_expired_and_audited(suite: dict[str, Any]) -> None:
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    viewer = pb_grpc.IncidentServiceStub(suite["channel"]("viewer", "vera"))

    active = (await operator.CreateSilence(pb.CreateSilenceRequest(silence=silence()))).silence
    assert (active.author, active.state, active.matchers.queue_glob) == (
        "olivia",
        pb.SILENCE_STATE_ACTIVE,
        "pay*",
    )
    later = silence(minutes_from=30, type=pb.INCIDENT_TYPE_QUEUE_BACKLOG, labels={"env": "prod"})
    pending = (await operator.CreateSilence(pb.CreateSilenceRequest(silence=later))).silence
    assert pending.state == pb.SILENCE_STATE_PENDING and dict(pending.matchers.labels) == {"env": "prod"}
    await refused(
        viewer.CreateSilence(pb.CreateSilenceRequest(silence=silence())), grpc.StatusCode.PERMISSION_DENIED
    )

    # Pages of one, newest first, then the state filter.
    first = await viewer.ListSilences(pb.ListSilencesRequest(page_size=1))
    assert [s.id for s in first.silences] == [pending.id] and first.next_page_token
    second = await viewer.ListSilences(pb.ListSilencesRequest(page_size=1, page_token=first.next_page_token))
    assert [s.id for s in second.silences] == [active.id] and not second.next_page_token
    await refused(
        viewer.ListSilences(
            pb.ListSilencesRequest(
                page_size=1, page_token=first.next_page_token, state=pb.SILENCE_STATE_ACTIVE
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )

    expired = (await operator.ExpireSilence(pb.ExpireSilenceRequest(silence_id=pending.id))).silence
    assert (expired.state, expired.expired_by) == (pb.SILENCE_STATE_EXPIRED, "olivia")
    states = {
        state: [s.id for s in (await viewer.ListSilences(pb.ListSilencesRequest(state=state))).silences]
        for state in (pb.SILENCE_STATE_ACTIVE, pb.SILENCE_STATE_PENDING, pb.SILENCE_STATE_EXPIRED)
    }
    assert states == {
        pb.SILENCE_STATE_ACTIVE: [active.id],
        pb.SILENCE_STATE_PENDING: [],
        pb.SILENCE_STATE_EXPIRED: [pending.id],
    }
    await refused(
        operator.ExpireSilence(pb.ExpireSilenceRequest(silence_id=999_999)), grpc.StatusCode.NOT_FOUND
    )

    monitor = mon_grpc.MonitorServiceStub(suite["channel"]("viewer"))
    audit = await monitor.ListAuditLogs(mon_pb.ListAuditLogsRequest(entity_type="silence"))
    entries = {(a.action, a.entity_id, a.actor, a.outcome) for a in audit.audit_logs}
    assert {
        (mon_pb.AUDIT_ACTION_SILENCE_CREATE, str(active.id), "olivia", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
        (mon_pb.AUDIT_ACTION_SILENCE_CREATE, str(pending.id), "olivia", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
        (mon_pb.AUDIT_ACTION_SILENCE_EXPIRE, str(pending.id), "olivia", mon_pb.AUDIT_OUTCOME_SUCCEEDED),
    } <= entries
    created = next(a for a in audit.audit_logs if a.entity_id == str(active.id))
    assert created.parameters["queue_glob"] == "pay*" and created.parameters["comment"] == "deploy"

    # The viewer's refused attempt is on record too (written after the refusal is answered).
    async def denied() -> list[str]:
        found = await monitor.ListAuditLogs(
            mon_pb.ListAuditLogsRequest(
                action=mon_pb.AUDIT_ACTION_SILENCE_CREATE, outcome=mon_pb.AUDIT_OUTCOME_DENIED
            )
        )
        return [a.actor for a in found.audit_logs]

    async def recorded() -> bool:
        return bool(await denied())

    await until(recorded, what="the refusal audited")
    assert await denied() == ["vera"]


async def test_bad_silences_are_refused_naming_the_field(suite: dict[str, Any]) -> None:
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    no_end = silence()
    no_end.ClearField("end_time")
    backwards = silence(minutes_from=30, minutes_to=10)
    cases = {
        "silence.matchers.queue_glob": silence(queue_glob="pay[ments"),
        "silence.matchers.worker_id": silence(worker_id="has spaces in it"),
        "silence.matchers.type": silence(type=99),
        "silence.matchers": silence(labels={}, queue_glob=""),
        "silence.end_time": no_end,
        "silence.comment": pb.Silence(
            matchers=pb.SilenceMatchers(queue_glob="pay*"), end_time=silence().end_time, comment="x" * 2001
        ),
    }
    for field, message in cases.items():
        details = await refused(
            operator.CreateSilence(pb.CreateSilenceRequest(silence=message)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert details.startswith(field + ":"), (field, details)
    details = await refused(
        operator.CreateSilence(pb.CreateSilenceRequest(silence=backwards)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert details.startswith("silence.end_time:") and "after start_time" in details
    listed = await operator.ListSilences(pb.ListSilencesRequest())
    assert list(listed.silences) == []


def window(**fields: Any) -> pb.MaintenanceWindow:
    values: dict[str, Any] = {
        "matchers": pb.SilenceMatchers(queue_glob="reports*"),
        "weekdays": ["MON", "WED"],
        "start_time_of_day": "02:00",
        "end_time_of_day": "04:30",
        "time_zone": "Asia/Seoul",
        "comment": "nightly batch",
    }
    values.update(fields)
    return pb.MaintenanceWindow(**values)


async def test_maintenance_windows_are_created_listed_deleted_audited_and_checked(
    suite: dict[str, Any],
) -> None:
    operator = pb_grpc.IncidentServiceStub(suite["channel"]("operator", "olivia"))
    viewer = pb_grpc.IncidentServiceStub(suite["channel"]("viewer", "vera"))
    created = (
        await operator.CreateMaintenanceWindow(pb.CreateMaintenanceWindowRequest(maintenance_window=window()))
    ).maintenance_window
    assert (created.author, list(created.weekdays), created.end_time_of_day) == (
        "olivia",
        ["MON", "WED"],
        "04:30",
    )
    listed = await viewer.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())
    assert [w.id for w in listed.maintenance_windows] == [created.id]
    await refused(
        viewer.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(window_id=created.id)),
        grpc.StatusCode.PERMISSION_DENIED,
    )

    cases = {
        "maintenance_window.weekdays": window(weekdays=["MON", "FUNDAY"]),
        "maintenance_window.time_zone": window(time_zone="Mars/Olympus_Mons"),
        "maintenance_window.end_time_of_day": window(start_time_of_day="05:00", end_time_of_day="04:00"),
        "maintenance_window.start_time_of_day": window(start_time_of_day="25:00"),
        "maintenance_window.comment": window(comment="x" * 2001),
        "maintenance_window.matchers.queue_glob": window(matchers=pb.SilenceMatchers(queue_glob="r[")),
    }
    for field, message in cases.items():
        details = await refused(
            operator.CreateMaintenanceWindow(pb.CreateMaintenanceWindowRequest(maintenance_window=message)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert details.startswith(field + ":"), (field, details)

    await operator.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(window_id=created.id))
    assert (
        list((await viewer.ListMaintenanceWindows(pb.ListMaintenanceWindowsRequest())).maintenance_windows)
        == []
    )
    await refused(
        operator.DeleteMaintenanceWindow(pb.DeleteMaintenanceWindowRequest(window_id=created.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    monitor = mon_grpc.MonitorServiceStub(suite["channel"]("viewer"))
    audit = await monitor.ListAuditLogs(mon_pb.ListAuditLogsRequest(entity_type="maint_window"))
    assert {(a.action, a.entity_id, a.actor, a.outcome) for a in audit.audit_logs} >= {
        (
            mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_CREATE,
            str(created.id),
            "olivia",
            mon_pb.AUDIT_OUTCOME_SUCCEEDED,
        ),
        (
            mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_DELETE,
            str(created.id),
            "olivia",
            mon_pb.AUDIT_OUTCOME_SUCCEEDED,
        ),
    }
