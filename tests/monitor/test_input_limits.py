"""MonitorService's input limits over real gRPC, and what the audit log keeps of refused attempts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from tests.monitor.test_service import Suite, build_suite
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.auth import TokenAuthority
from workermon_core.errors import error_info
from workermon_core.validation import MAX_AUDIT_KEYS, MAX_AUDIT_VALUE_CHARS, MAX_JSON_DEPTH, MAX_REASON


@pytest.fixture
async def suite(
    tmp_path: Path,
    redis: aioredis.Redis,
    redis_url: str,
    prefix: str,
    authority: TokenAuthority,
    database_url: str,
) -> AsyncIterator[Suite]:
    """The suite on each backend: PostgreSQL is the stricter about what a text column holds."""
    built, stop = await build_suite(tmp_path, redis, redis_url, prefix, authority, database_url=database_url)
    yield built
    await stop()


async def _entries(suite: Suite, actor: str) -> list[pb.AuditLog]:
    reply = await suite.client("admin").ListAuditLogs(pb.ListAuditLogsRequest(actor=actor, page_size=50))
    return list(reply.audit_logs)


def _refused_field(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.value.details()
    info = error_info(exc.value)
    assert info is not None
    return info.metadata["field"]


async def test_a_viewer_cannot_bloat_the_audit_log(suite: Suite) -> None:
    """A denied attempt is recorded, but with each value cut to the limit and the cut noted."""
    huge_queue, huge_reason = "q\x00" * 50_000, "r" * 1_000_000
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await suite.client("viewer", "bloater").PauseQueue(
            pb.PauseQueueRequest(queue=huge_queue, reason=huge_reason)
        )
    assert exc.value.code() == grpc.StatusCode.PERMISSION_DENIED
    [entry] = await _entries(suite, "bloater")
    assert entry.outcome == pb.AUDIT_OUTCOME_DENIED
    stored_reason = entry.parameters["reason"]
    assert (
        stored_reason.startswith("r" * MAX_AUDIT_VALUE_CHARS)
        and "truncated: 1,000,000 characters" in stored_reason
    )
    assert len(stored_reason) < MAX_AUDIT_VALUE_CHARS + 100
    assert list(entry.parameters["_truncated"]) == ["reason"]
    assert (
        len(entry.entity_id) < MAX_AUDIT_VALUE_CHARS + 100 and len(entry.queue) < MAX_AUDIT_VALUE_CHARS + 100
    )
    # A NUL cannot be stored in PostgreSQL; the record keeps the rest of what was sent.
    assert entry.queue.startswith("q\ufffdq\ufffd")


async def test_an_overlong_reason_is_refused_and_audited(suite: Suite) -> None:
    queue = suite.queue("limits-reason")
    await queue.add("x", {})
    try:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await suite.client("operator", "long-winded").PauseQueue(
                pb.PauseQueueRequest(queue="limits-reason", reason="r" * (MAX_REASON + 1))
            )
        assert _refused_field(exc) == "reason" and str(MAX_REASON) in (exc.value.details() or "")
        assert not await queue.isPaused()
        [entry] = await _entries(suite, "long-winded")
        assert entry.outcome == pb.AUDIT_OUTCOME_REFUSED and str(MAX_REASON) in entry.result["error"]
    finally:
        await queue.obliterate({"force": True})
        await queue.close()


async def test_clean_with_an_unknown_state_is_refused_and_audited(suite: Suite) -> None:
    """State 999 (no JobState has it) used to fail with INTERNAL before the attempt was recorded."""
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await suite.client("admin", "cleaner").CleanQueue(
            pb.CleanQueueRequest(queue="limits-clean", state=999, confirm="limits-clean")  # type: ignore[arg-type]
        )
    assert _refused_field(exc) == "state"
    [entry] = await _entries(suite, "cleaner")
    assert entry.outcome == pb.AUDIT_OUTCOME_REFUSED and entry.parameters["state"] == "999"
    assert entry.action == pb.AUDIT_ACTION_QUEUE_CLEAN


async def test_add_job_data_is_bounded_in_nesting(suite: Suite) -> None:
    queue = suite.queue("limits-add")
    await queue.add("first", {})
    try:
        operator = suite.client("operator", "adder")
        for data in ("[" * 100_000 + "]" * 100_000, "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)):
            with pytest.raises(grpc.aio.AioRpcError) as exc:
                await operator.AddJob(pb.AddJobRequest(queue="limits-add", name="deep", data=data))
            assert _refused_field(exc) == "data" and f"at most {MAX_JSON_DEPTH} levels" in (
                exc.value.details() or ""
            )
        nested_ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
        added = await operator.AddJob(pb.AddJobRequest(queue="limits-add", name="deep", data=nested_ok))
        assert added.job.name == "deep"
        outcomes = [e.outcome for e in await _entries(suite, "adder")]
        assert outcomes == [pb.AUDIT_OUTCOME_SUCCEEDED, pb.AUDIT_OUTCOME_REFUSED, pb.AUDIT_OUTCOME_REFUSED]
    finally:
        await queue.obliterate({"force": True})
        await queue.close()


async def test_an_entry_written_for_another_service_keeps_a_bounded_number_of_parameters(
    suite: Suite,
) -> None:
    entry = pb.AuditLog(
        actor="incident-bot",
        role="operator",
        action=pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE,
        entity_type="incident",
        entity_id="7",
        outcome=pb.AUDIT_OUTCOME_SUCCEEDED,
    )
    entry.parameters.update({f"k{i:03}": "v" for i in range(100)})
    written = (
        await suite.client("admin").CreateAuditLog(pb.CreateAuditLogRequest(audit_log=entry))
    ).audit_log
    kept = [key for key in written.parameters if key.startswith("k")]
    assert len(kept) == MAX_AUDIT_KEYS and written.parameters["_dropped_keys"] == 100 - MAX_AUDIT_KEYS


READ_CASES: list[tuple[object, str]] = [
    (pb.ListQueuesRequest(name_prefix="p" * 201), "name_prefix"),
    (pb.ListQueuesRequest(status=999), "status"),  # type: ignore[arg-type]
    (pb.ListJobsRequest(queue="q", failure_category="c" * 201), "failure_category"),
    (pb.ListWorkersRequest(hostname="h" * 256), "hostname"),
    (pb.ListAuditLogsRequest(actor="a" * 201), "actor"),
    (pb.ListAuditLogsRequest(page_token="t" * 2000), "page_token"),
    (pb.GetWorkerRequest(worker_id="bad id with spaces"), "worker_id"),
]


async def test_read_filters_are_bounded(suite: Suite) -> None:
    client = suite.client("viewer")
    for request, field in READ_CASES:
        method = getattr(client, type(request).__name__.removesuffix("Request"))
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await method(request)
        assert _refused_field(exc) == field, request
    # A job's entity id is "queue/job id": a filter as long as the longest one is fine.
    longest = "q" * 200 + "/" + "j" * 512
    assert not (await client.ListAuditLogs(pb.ListAuditLogsRequest(entity_id=longest))).audit_logs
