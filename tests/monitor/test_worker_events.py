"""Worker transitions reach the audit log with the time they happened, even when written late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon_monitor.audit.auditor import Auditor
from workermon_monitor.audit.store import AuditStore
from workermon_monitor.service import WorkerEventRecorder


def _event(event_id: str, when: datetime) -> hb_pb.WatchWorkersResponse:
    event = hb_pb.WatchWorkersResponse(
        event_id=event_id, type=hb_pb.WORKER_EVENT_TYPE_OFFLINE, worker_id="w-late", reason="missed beats"
    )
    event.event_time.FromDatetime(when)
    event.worker.report.worker_id = "w-late"
    return event


async def test_a_transition_written_late_keeps_the_time_it_happened(
    audit_store: AuditStore, redis: aioredis.Redis, prefix: str
) -> None:
    clock = FakeClock()
    now = datetime.fromtimestamp(clock(), tz=UTC)
    happened = now - timedelta(minutes=42)  # e.g. the database was down for 42 minutes
    recorder = WorkerEventRecorder(None, Auditor(audit_store, {}, clock), redis, prefix)  # type: ignore[arg-type]

    await recorder._record(_event("1-1", happened))
    await recorder._record(_event("1-1", happened))  # the same event again (another replica): once

    rows, _ = await audit_store.list(entity_id="w-late", page_size=10)
    assert len(rows) == 1
    assert rows[0].time == happened
    assert rows[0].action == "WORKER_OFFLINE"
