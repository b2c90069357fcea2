from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable

import grpc
import psutil
import pytest

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb2
from workermon_sdk import (
    SDK_NAME,
    Backoff,
    CommandLedger,
    CommandType,
    HeartbeatClient,
    WorkerCommand,
    WorkerState,
    WorkerStats,
)

WaitUntil = Callable[..., Awaitable[None]]


def test_enums_match_the_proto() -> None:
    for state in WorkerState:
        assert hb_pb2.WorkerState.Value(f"WORKER_STATE_{state.name}") == state
    for command_type in CommandType:
        assert hb_pb2.CommandType.Value(f"COMMAND_TYPE_{command_type.name}") == command_type


# --- command ledger ------------------------------------------------------------------------------------


def test_ledger_admits_each_command_once() -> None:
    ledger = CommandLedger()
    assert ledger.admit("c1")
    assert not ledger.admit("c1")
    assert ledger.admit("c2")


def test_ledger_memory_is_bounded() -> None:
    ledger = CommandLedger(max_remembered=50, max_unconfirmed=10)
    for n in range(1000):
        assert ledger.admit(f"c{n}")
        ledger.complete(f"c{n}", True, "done")
    assert ledger.remembered == 50
    assert ledger.unconfirmed == 10
    # The newest acks are the ones kept.
    assert [ack.command_id for ack in ledger.outgoing()] == [f"c{n}" for n in range(990, 1000)]


def test_ledger_default_keeps_at_most_one_beat_of_acks() -> None:
    ledger = CommandLedger()
    for n in range(500):
        ledger.admit(str(n))
        ledger.complete(str(n), True, "done")
    assert len(ledger.outgoing()) == 100


def test_ledger_confirms_only_acks_already_sent() -> None:
    ledger = CommandLedger()
    ledger.admit("c1")
    ledger.complete("c1", True, "done")
    assert [a.command_id for a in ledger.outgoing()] == ["c1"]
    ledger.admit("c2")
    ledger.complete("c2", False, "could not")
    ledger.confirm()
    assert [(a.command_id, a.ok) for a in ledger.outgoing()] == [("c2", False)]
    ledger.confirm()
    assert ledger.outgoing() == []


def test_ledger_unconfirmed_acks_are_resent_until_confirmed() -> None:
    ledger = CommandLedger()
    ledger.admit("c1")
    ledger.complete("c1", True, "done")
    assert len(ledger.outgoing()) == 1
    assert len(ledger.outgoing()) == 1  # e.g. the stream broke before any answer


def test_ledger_resends_the_ack_of_a_redelivered_command() -> None:
    ledger = CommandLedger()
    ledger.admit("c1")
    assert not ledger.resend("c1")  # still being carried out: nothing to resend
    ledger.complete("c1", True, "done")
    assert not ledger.resend("c1")  # already waiting
    ledger.outgoing()
    ledger.confirm()
    assert not ledger.admit("c1")
    assert ledger.resend("c1")
    assert [a.command_id for a in ledger.outgoing()] == ["c1"]


def test_ledger_truncates_long_results() -> None:
    ledger = CommandLedger()
    ack = ledger.complete("c1", False, "x" * 5000)
    assert len(ack.result) == 1000


# --- report --------------------------------------------------------------------------------------------


def test_report_carries_identity_numbers_and_gauges() -> None:
    stats = WorkerStats(
        active_jobs=2,
        processed_total=10,
        failed_total=3,
        active_job_ids=["a", "b"],
        state=WorkerState.QUIET,
        gauges={"browsers": 4, "pool": 2.5},
    )
    client = HeartbeatClient(
        "127.0.0.1:1",
        "token",
        worker_id="render-1",
        queues=["render", "email"],
        labels={"region": "eu"},
        version="1.2.3",
        concurrency=8,
        report=lambda: stats,
    )
    report = client.build_report()
    assert report.worker_id == "render-1"
    assert uuid.UUID(report.instance_id)
    assert report.pid == os.getpid()
    assert report.hostname
    assert list(report.queues) == ["render", "email"]
    assert dict(report.labels) == {"region": "eu"}
    assert (report.version, report.concurrency) == ("1.2.3", 8)
    assert (report.active_jobs, report.processed_total, report.failed_total) == (2, 10, 3)
    assert list(report.active_job_ids) == ["a", "b"]
    assert report.state == hb_pb2.WORKER_STATE_QUIET
    assert report.sdk == SDK_NAME
    assert re.fullmatch(r"workermon-sdk-python/\d+\.\d+\.\d+.*", report.sdk)
    assert report.gauges.rss_bytes > 0
    assert report.gauges.cpu_percent >= 0
    assert dict(report.gauges.custom) == {"browsers": 4.0, "pool": 2.5}
    started = report.started_at.ToDatetime().timestamp()
    assert abs(started - psutil.Process().create_time()) < 1
    assert started <= time.time()


def test_each_client_is_a_new_instance_with_a_valid_default_id() -> None:
    first, second = HeartbeatClient("127.0.0.1:1", "t"), HeartbeatClient("127.0.0.1:1", "t")
    assert first.instance_id != second.instance_id
    assert first.worker_id == second.worker_id
    assert first.worker_id.endswith(f"-{os.getpid()}")
    assert re.fullmatch(r"[A-Za-z0-9._:@/-]{1,200}", first.worker_id)


def test_report_caps_active_job_ids() -> None:
    stats = WorkerStats(active_jobs=5000, active_job_ids=[str(n) for n in range(5000)])
    report = HeartbeatClient("127.0.0.1:1", "t", report=lambda: stats).build_report()
    assert report.active_jobs == 5000
    assert len(report.active_job_ids) == 1000


def test_a_failing_report_callback_keeps_the_last_good_numbers() -> None:
    calls = 0

    def report() -> WorkerStats:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("boom")
        return WorkerStats(processed_total=7)

    client = HeartbeatClient("127.0.0.1:1", "t", report=report)
    assert client.build_report().processed_total == 7
    assert client.build_report().processed_total == 7


@pytest.mark.parametrize(
    "kwargs",
    [
        {"worker_id": ""},
        {"worker_id": "has space"},
        {"worker_id": "x" * 201},
        {"queues": [f"q{n}" for n in range(65)]},
        {"labels": {f"k{n}": "v" for n in range(33)}},
    ],
)
def test_rejects_reports_the_service_would_refuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HeartbeatClient("127.0.0.1:1", "t", **kwargs)  # type: ignore[arg-type]


# --- service down --------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_stream", [True, False])
async def test_keeps_retrying_quietly_while_the_service_is_down(
    closed_target: str, use_stream: bool, caplog: pytest.LogCaptureFixture, wait_until: WaitUntil
) -> None:
    tokens = 0

    def token() -> str:
        nonlocal tokens
        tokens += 1
        return "token"

    backoff = Backoff(base=0.01, cap=0.05)
    client = HeartbeatClient(closed_target, token, use_stream=use_stream, backoff=backoff)
    with caplog.at_level(logging.WARNING, logger="workermon_sdk"):
        await client.start()
        await wait_until(lambda: client.beats_failed >= 5, message="failed beats")
        assert not client.connected
        assert client.beats_sent == 0
        assert isinstance(client.last_error, grpc.aio.AioRpcError)
        assert client.last_error.code() == grpc.StatusCode.UNAVAILABLE
        assert tokens >= 5  # a callable token is asked again on every attempt
        started = time.monotonic()
        await client.stop()
        assert time.monotonic() - started < 3
    failures = [r for r in caplog.records if "heartbeat to" in r.getMessage()]
    assert len(failures) == 1  # rate limited
    assert failures[0].levelno == logging.WARNING
    assert not client.running


async def test_stop_never_raises_and_is_idempotent(closed_target: str) -> None:
    client = HeartbeatClient(closed_target, "t")
    await client.stop()  # never started
    async with client:
        assert client.running
    await client.stop()
    assert not client.running


# --- commands ------------------------------------------------------------------------------------------


def _command(command_id: str, command_type: CommandType = CommandType.QUIET) -> WorkerCommand:
    return hb_pb2.WorkerCommand(command_id=command_id, type=command_type.value)


async def test_each_command_runs_once_and_is_acked(closed_target: str, wait_until: WaitUntil) -> None:
    handled: list[str] = []

    async def handler(command: WorkerCommand) -> tuple[bool, str]:
        handled.append(command.command_id)
        if command.type == CommandType.STOP:
            raise RuntimeError("cannot stop now")
        return True, "quiet now"

    async with HeartbeatClient(closed_target, "t", command_handler=handler) as client:
        for command in (_command("c1"), _command("c1"), _command("c2", CommandType.STOP), _command("c1")):
            client._accept_command(command)
        await wait_until(lambda: client._ledger.unconfirmed == 2, message="two acks")
        await asyncio.sleep(0.05)
        assert handled == ["c1", "c2"]
        assert client.commands_received == 2
        acks = {ack.command_id: (ack.ok, ack.result) for ack in client._ledger.outgoing()}
        assert acks == {"c1": (True, "quiet now"), "c2": (False, "RuntimeError: cannot stop now")}


async def test_commands_without_a_handler_are_refused(closed_target: str, wait_until: WaitUntil) -> None:
    async with HeartbeatClient(closed_target, "t") as client:
        client._accept_command(_command("c1"))
        await wait_until(lambda: client._ledger.unconfirmed == 1)
        [ack] = client._ledger.outgoing()
        assert not ack.ok


async def test_command_backlog_is_bounded(closed_target: str) -> None:
    release = asyncio.Event()

    async def handler(command: WorkerCommand) -> tuple[bool, str]:
        await release.wait()
        return True, "done"

    async with HeartbeatClient(closed_target, "t", command_handler=handler) as client:
        client._accept_command(_command("first"))
        await asyncio.sleep(0.01)  # the runner takes it and blocks in the handler
        for n in range(150):
            client._accept_command(_command(f"c{n}"))
        refused = client._ledger.outgoing()
        assert len(refused) == 50
        assert all(not ack.ok and "too many commands" in ack.result for ack in refused)
        release.set()
