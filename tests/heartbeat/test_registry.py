"""Beats, expiry to OFFLINE, goodbye, retention, listing and summary, through the real gRPC API."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.support.fakes import FakeClock
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_core.errors import error_info

from ..support.heartbeat import Running, report


async def test_beat_registers_worker_online(hb: Running) -> None:
    client = hb.client("worker")
    reply = await client.Beat(pb.BeatRequest(report=report("w-1", queues=("emails", "reports"))))
    assert reply.beat_interval.seconds == 10
    assert not reply.commands
    admin = hb.client("viewer")
    got = (await admin.GetWorker(pb.GetWorkerRequest(worker_id="w-1"))).worker
    assert got.status == pb.WORKER_STATUS_ONLINE
    assert list(got.report.queues) == ["emails", "reports"]
    assert got.report.hostname == "host-a"
    summary = await admin.GetWorkerSummary(pb.GetWorkerSummaryRequest())
    assert (summary.online, summary.offline) == (1, 0)
    assert {(q.queue, q.online) for q in summary.queues} == {("emails", 1), ("reports", 1)}


async def test_missed_beats_go_offline_and_stay_listed(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    await client.Beat(pb.BeatRequest(report=report("w-1")))
    await client.Beat(pb.BeatRequest(report=report("w-2")))
    clock.advance(20)
    await client.Beat(pb.BeatRequest(report=report("w-2")))
    clock.advance(15)  # w-1 last beat 35 s ago (> 30 s window), w-2 15 s ago
    await hb.servicer.registry.sweep()
    viewer = hb.client("viewer")
    w1 = (await viewer.GetWorker(pb.GetWorkerRequest(worker_id="w-1"))).worker
    assert w1.status == pb.WORKER_STATUS_OFFLINE
    assert w1.offline_reason == "missed beats"
    assert w1.last_seen_time.ToMilliseconds() == int((clock.now - 35) * 1000)
    offline = await viewer.ListWorkers(pb.ListWorkersRequest(status=pb.WORKER_STATUS_OFFLINE))
    assert [w.report.worker_id for w in offline.workers] == ["w-1"]
    online = await viewer.ListWorkers(pb.ListWorkersRequest(status=pb.WORKER_STATUS_ONLINE))
    assert [w.report.worker_id for w in online.workers] == ["w-2"]
    summary = await viewer.GetWorkerSummary(pb.GetWorkerSummaryRequest())
    assert (summary.online, summary.offline) == (1, 1)
    assert [(q.queue, q.online) for q in summary.queues] == [("emails", 1)]


async def test_workers_forgotten_after_retention(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    await client.Beat(pb.BeatRequest(report=report("old")))
    clock.advance(24 * 3600 + 1)
    await client.Beat(pb.BeatRequest(report=report("fresh")))
    await hb.servicer.registry.sweep()
    viewer = hb.client("viewer")
    listed = await viewer.ListWorkers(pb.ListWorkersRequest())
    assert [w.report.worker_id for w in listed.workers] == ["fresh"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.GetWorker(pb.GetWorkerRequest(worker_id="old"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(caught.value)
    assert info is not None and info.reason == "WORKER_NOT_FOUND"


async def test_goodbye_is_immediate_and_ignores_older_instance(hb: Running) -> None:
    client = hb.client("worker")
    await client.Beat(pb.BeatRequest(report=report("w-1", instance_id="new")))
    await client.Goodbye(pb.GoodbyeRequest(worker_id="w-1", instance_id="old", reason="late"))
    viewer = hb.client("viewer")
    assert (
        await viewer.GetWorker(pb.GetWorkerRequest(worker_id="w-1"))
    ).worker.status == pb.WORKER_STATUS_ONLINE
    await client.Goodbye(pb.GoodbyeRequest(worker_id="w-1", instance_id="new", reason="SIGTERM"))
    got = (await viewer.GetWorker(pb.GetWorkerRequest(worker_id="w-1"))).worker
    assert got.status == pb.WORKER_STATUS_OFFLINE
    assert got.offline_reason == "goodbye: SIGTERM"
    summary = await viewer.GetWorkerSummary(pb.GetWorkerSummaryRequest())
    assert [(q.queue, q.online) for q in summary.queues] == [("emails", 0)]


async def test_changing_queues_moves_per_queue_counts(hb: Running) -> None:
    client = hb.client("worker")
    await client.Beat(pb.BeatRequest(report=report("w-1", queues=("a", "b"))))
    await client.Beat(pb.BeatRequest(report=report("w-1", queues=("b", "c"))))
    viewer = hb.client("viewer")
    summary = await viewer.GetWorkerSummary(pb.GetWorkerSummaryRequest())
    assert {(q.queue, q.online) for q in summary.queues} == {("a", 0), ("b", 1), ("c", 1)}
    by_queue = await viewer.ListWorkers(pb.ListWorkersRequest(queue="a"))
    assert not by_queue.workers


async def test_pagination_and_filters(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    for i in range(250):
        host = "even" if i % 2 == 0 else "odd"
        await client.Beat(pb.BeatRequest(report=report(f"w-{i:04d}", hostname=host)))
    viewer = hb.client("viewer")
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=100, page_token=token))
        seen += [w.report.worker_id for w in page.workers]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"w-{i:04d}" for i in range(250)]
    odd = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=500, hostname="odd"))
    assert len(odd.workers) == 125 and not odd.next_page_token
    first = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=10, hostname="odd"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.ListWorkers(pb.ListWorkersRequest(page_size=10, page_token=first.next_page_token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (caught.value.details() or "")
    default = await viewer.ListWorkers(pb.ListWorkersRequest())
    assert len(default.workers) == 50


async def test_search_matches_id_or_hostname_ignoring_case(hb: Running, clock: FakeClock) -> None:
    client = hb.client("worker")
    for i in range(30):
        host = "Build-Box-7" if i % 3 == 0 else f"web-{i}"
        await client.Beat(pb.BeatRequest(report=report(f"Mailer-{i:03d}", hostname=host)))
    await client.Beat(pb.BeatRequest(report=report("thumbs-1", hostname="gpu-a")))
    viewer = hb.client("viewer")

    async def ids(**fields: object) -> list[str]:
        seen: list[str] = []
        token = ""
        while True:
            page = await viewer.ListWorkers(pb.ListWorkersRequest(page_token=token, **fields))  # type: ignore[arg-type]
            seen += [w.report.worker_id for w in page.workers]
            token = page.next_page_token
            if not token:
                return seen

    # The id, in any case; the hostname, in any case; a text in neither matches nothing.
    assert await ids(search="MAILER-00") == [f"Mailer-{i:03d}" for i in range(10)]
    assert await ids(search="box-7") == [f"Mailer-{i:03d}" for i in range(0, 30, 3)]
    assert await ids(search="GPU") == ["thumbs-1"]
    assert await ids(search="nowhere") == []
    # Pages of a search keep the search: three pages of four, then the rest.
    assert await ids(search="build", page_size=4) == [f"Mailer-{i:03d}" for i in range(0, 30, 3)]
    # Lua pattern characters are plain text.
    assert await ids(search="mailer-0.%") == []
    # Combined with the status filter.
    clock.advance(35)
    await client.Beat(pb.BeatRequest(report=report("thumbs-1", hostname="gpu-a")))
    await hb.servicer.registry.sweep()
    assert await ids(search="1", status=pb.WORKER_STATUS_ONLINE) == ["thumbs-1"]
    assert "thumbs-1" not in await ids(search="1", status=pb.WORKER_STATUS_OFFLINE)


async def test_search_is_bounded_and_kept_by_the_page_token(hb: Running) -> None:
    client = hb.client("worker")
    for i in range(5):
        await client.Beat(pb.BeatRequest(report=report(f"w-{i}")))
    viewer = hb.client("viewer")
    assert len((await viewer.ListWorkers(pb.ListWorkersRequest(search="w" * 200))).workers) == 0
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.ListWorkers(pb.ListWorkersRequest(search="w" * 201))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(caught.value)
    assert info is not None and info.metadata["field"] == "search"
    first = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=2, search="w-"))
    assert [w.report.worker_id for w in first.workers] == ["w-0", "w-1"]
    # A token from one search does not continue another.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await viewer.ListWorkers(
            pb.ListWorkersRequest(page_size=2, search="w-1", page_token=first.next_page_token)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in (caught.value.details() or "")


async def test_beat_stream_registers_and_answers(hb: Running) -> None:
    client = hb.client("worker")
    outbox: asyncio.Queue[pb.BeatStreamRequest | None] = asyncio.Queue()

    async def requests():  # type: ignore[no-untyped-def]
        while (item := await outbox.get()) is not None:
            yield item

    call = client.BeatStream(requests())
    await outbox.put(pb.BeatStreamRequest(report=report("s-1")))
    first = await asyncio.wait_for(call.read(), 5)
    assert first.beat_interval.seconds == 10
    viewer = hb.client("viewer")
    got = (await viewer.GetWorker(pb.GetWorkerRequest(worker_id="s-1"))).worker
    assert got.status == pb.WORKER_STATUS_ONLINE
    await outbox.put(pb.BeatStreamRequest(report=report("other")))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(call.read(), 5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await outbox.put(None)


async def test_redis_clients_reported_after_the_first_beat_count_as_the_workers_own(hb: Running) -> None:
    client = hb.client("worker")
    registry = hb.servicer.registry
    # The SDK's first beats go out before it has asked Redis for its connections' addresses.
    await client.Beat(pb.BeatRequest(report=report("w-1", queues=("emails",), instance_id="i-1")))
    assert await registry.own_hosts({"emails"}) == set()
    later = report("w-1", queues=("emails",), instance_id="i-1")
    later.redis_clients.add(id=7, addr="10.0.0.5:51234")
    await client.Beat(pb.BeatRequest(report=later))
    assert await registry.own_hosts({"emails"}) == {("emails", "10.0.0.5")}
