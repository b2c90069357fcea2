"""Worker commands report the worker's answer; refused attempts at audited actions are audited whichever
service refuses them (the monitor, the heartbeat, the incidents service), token-less ones included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf import duration_pb2

from tests.support.bull import until
from tests.support.heartbeat import report
from tests.support.suites import LocalSuite, start_local_suite
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info


class Calls:
    """Channels to the suite with tokens of any role (or none), closed at the end."""

    def __init__(self, local: LocalSuite, authority: TokenAuthority) -> None:
        self.local = local
        self.authority = authority
        self.channels: list[grpc.aio.Channel] = []

    def channel(self, role: str | None, subject: str | None = None, **claims: Any) -> grpc.aio.Channel:
        if role is None:
            channel = grpc.aio.insecure_channel(self.local.target)
        else:
            token = self.authority.mint(subject or f"{role}-user", role, **claims)
            channel = open_channel(self.local.target, token)
        self.channels.append(channel)
        return channel

    def monitor(self, role: str | None, subject: str | None = None) -> pb_grpc.MonitorServiceStub:
        return pb_grpc.MonitorServiceStub(self.channel(role, subject))

    def heartbeat(
        self, role: str | None, subject: str | None = None, **claims: Any
    ) -> hb_grpc.HeartbeatServiceStub:
        return hb_grpc.HeartbeatServiceStub(self.channel(role, subject, **claims))

    async def audit(self, **filters: Any) -> list[pb.AuditLog]:
        reply = await self.monitor("admin").ListAuditLogs(pb.ListAuditLogsRequest(page_size=200, **filters))
        return list(reply.audit_logs)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()


@pytest.fixture
async def calls(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[Calls]:
    local = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "collector", "monitor", "incidents"),
    )
    calls = Calls(local, authority)
    yield calls
    await calls.close()
    await local.stop()


async def _refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def _one_denied(calls: Calls, action: int, actor: str) -> pb.AuditLog:
    found: list[pb.AuditLog] = []

    async def written() -> bool:
        found[:] = [
            row
            for row in await calls.audit(action=action, actor=actor)
            if row.outcome == pb.AUDIT_OUTCOME_DENIED
        ]
        return bool(found)

    await until(written, what=f"a DENIED {pb.AuditAction.Name(action)} entry for {actor}")
    assert len(found) == 1
    return found[0]


async def test_an_operator_calling_send_command_directly_is_refused_and_audited(calls: Calls) -> None:
    for role, who in (("operator", "olivia"), ("admin", "ada")):
        err = await _refused(
            calls.heartbeat(role, who).SendCommand(
                hb_pb.SendCommandRequest(worker_id="pay-1", type=hb_pb.COMMAND_TYPE_STOP, reason="x" * 5000)
            )
        )
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(err).reason == "SERVICE_ONLY"  # type: ignore[union-attr]
        entry = await _one_denied(calls, pb.AUDIT_ACTION_WORKER_COMMAND, who)
        assert (entry.role, entry.entity_type, entry.entity_id) == (role, "worker", "pay-1")
        assert entry.parameters["type"] == "COMMAND_TYPE_STOP"
        # What a refused caller sent is kept bounded: the log cannot be bloated through refusals.
        assert len(entry.parameters["reason"]) <= 201
        assert entry.result["reason"] == "SERVICE_ONLY"


async def test_token_less_and_worker_attempts_at_actions_are_audited(calls: Calls) -> None:
    err = await _refused(calls.monitor(None).PauseQueue(pb.PauseQueueRequest(queue="orders")))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    entry = await _one_denied(calls, pb.AUDIT_ACTION_QUEUE_PAUSE, "anonymous")
    assert (entry.role, entry.entity_type, entry.entity_id, entry.queue) == (
        "none",
        "queue",
        "orders",
        "orders",
    )
    assert entry.result["reason"] == "TOKEN_MISSING"

    worker = calls.monitor("worker", "pay-1")
    err = await _refused(worker.RetryJob(pb.RetryJobRequest(queue="orders", job_id="42")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    entry = await _one_denied(calls, pb.AUDIT_ACTION_JOB_RETRY, "pay-1")
    assert (entry.role, entry.entity_type, entry.entity_id) == ("worker", "job", "orders/42")

    # A read is not an action: refusing it writes nothing.
    await _refused(calls.monitor(None).ListQueues(pb.ListQueuesRequest()))
    assert not await calls.audit(actor="anonymous", action=pb.AUDIT_ACTION_QUEUE_RESUME)


async def test_a_viewers_refused_acknowledge_and_resolve_are_audited(calls: Calls) -> None:
    incidents = inc_grpc.IncidentServiceStub(calls.channel("viewer", "vera"))
    err = await _refused(incidents.AcknowledgeIncident(inc_pb.AcknowledgeIncidentRequest(incident_id=7)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    entry = await _one_denied(calls, pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE, "vera")
    assert (entry.role, entry.entity_type, entry.entity_id) == ("viewer", "incident", "7")
    err = await _refused(incidents.ResolveIncident(inc_pb.ResolveIncidentRequest(incident_id=7, note="n")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    await _one_denied(calls, pb.AUDIT_ACTION_INCIDENT_RESOLVE, "vera")


def _seconds(value: float) -> duration_pb2.Duration:
    wait = duration_pb2.Duration()
    wait.FromMilliseconds(int(value * 1000))
    return wait


class BeatingWorker:
    """A worker that only beats (no SDK): answers the commands it gets with `ok`, or never when None."""

    def __init__(self, calls: Calls, worker_id: str, ok: bool | None) -> None:
        self.stub = calls.heartbeat("worker", worker_id, worker=worker_id)
        self.worker_id = worker_id
        self.ok = ok
        self.acks: list[hb_pb.CommandAck] = []
        self.unanswered: list[hb_pb.WorkerCommand] = []
        self.task: asyncio.Task[None] | None = None

    async def beat(self) -> list[hb_pb.WorkerCommand]:
        acks, self.acks = self.acks, []
        reply = await self.stub.Beat(hb_pb.BeatRequest(report=report(self.worker_id), acks=acks))
        return list(reply.commands)

    async def run(self) -> None:
        while True:
            self.unanswered.extend(await self.beat())
            if self.ok is not None:
                answer = "done" if self.ok else "busy with a migration, not now"
                for command in self.unanswered:
                    self.acks.append(
                        hb_pb.CommandAck(command_id=command.command_id, ok=self.ok, result=answer)
                    )
                self.unanswered.clear()
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def test_worker_commands_say_what_the_worker_answered(calls: Calls) -> None:
    operator = calls.monitor("operator", "olivia")
    willing, unwilling, silent = (
        BeatingWorker(calls, "cmd-willing", True),
        BeatingWorker(calls, "cmd-unwilling", False),
        BeatingWorker(calls, "cmd-silent", None),
    )
    for worker in (willing, unwilling, silent):
        await worker.beat()
        worker.start()
    try:
        done = await operator.QuietWorker(pb.QuietWorkerRequest(worker_id="cmd-willing", reason="deploy"))
        assert done.outcome == pb.COMMAND_OUTCOME_ACKED
        assert done.command.status == pb.COMMAND_STATUS_ACKED and done.command.result == "done"
        refused = await operator.ResumeWorker(pb.ResumeWorkerRequest(worker_id="cmd-unwilling"))
        assert refused.outcome == pb.COMMAND_OUTCOME_REFUSED
        assert refused.command.result == "busy with a migration, not now"
        pending = await operator.QuietWorker(
            pb.QuietWorkerRequest(worker_id="cmd-silent", wait=_seconds(0.3))
        )
        assert pending.outcome == pb.COMMAND_OUTCOME_PENDING

        rows = {row.id: row for row in await calls.audit(actor="olivia")}
        assert rows[done.audit_id].outcome == pb.AUDIT_OUTCOME_SUCCEEDED
        assert rows[done.audit_id].result["outcome"] == "ACKED"
        assert rows[refused.audit_id].outcome == pb.AUDIT_OUTCOME_FAILED
        assert rows[refused.audit_id].result["worker_answer"] == "busy with a migration, not now"
        assert rows[pending.audit_id].outcome == pb.AUDIT_OUTCOME_PENDING

        # The worker answers late: the entry that said PENDING then says how it ended.
        silent.ok = True

        async def settled() -> bool:
            rows = {row.id: row for row in await calls.audit(actor="olivia")}
            return rows[pending.audit_id].outcome == pb.AUDIT_OUTCOME_SUCCEEDED

        await until(settled, what="the PENDING entry completed once the worker answered")

        err = await _refused(
            operator.QuietWorker(pb.QuietWorkerRequest(worker_id="cmd-willing", wait=_seconds(61)))
        )
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "wait" in (err.details() or "")
    finally:
        for worker in (willing, unwilling, silent):
            await worker.stop()
