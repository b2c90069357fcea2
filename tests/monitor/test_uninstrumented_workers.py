"""BullMQ workers without the SDK are seen by their named Redis connections (CLIENT LIST): a real Node
BullMQ worker and a real Python bullmq worker appear as uninstrumented workers beside an SDK worker, each
worker once; they count as the queue's online workers; they cannot take commands. A Redis that refuses
CLIENT LIST, and one that is gone, say so in the listing instead of an empty list.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker

from tests.support.bull import until
from tests.support.nodejs import start_produce
from tests.support.processes import RedisProcess
from tests.support.suites import LocalSuite, start_local_suite
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.errors import error_info
from workermon_queues.bullmq.connections import parse_worker_name
from workermon_sdk.bullmq import InstrumentedWorker

SCAN = 0.2
UNINSTRUMENTED = pb.WORKER_KIND_UNINSTRUMENTED


async def _idle(job: Job, token: str) -> str:
    return "ok"


@pytest.fixture
async def suite(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[LocalSuite]:
    local = await start_local_suite(
        tmp_path, redis, redis_url, prefix, authority, connection_scan_seconds=SCAN
    )
    try:
        yield local
    finally:
        await local.stop()


def _monitor(local: LocalSuite, authority: TokenAuthority, role: str, stack: list[Any]) -> Any:
    channel = open_channel(local.target, authority.mint(f"{role}-user", role))
    stack.append(channel)
    return pb_grpc.MonitorServiceStub(channel)


async def _all_workers(monitor: Any, **filters: Any) -> list[pb.Worker]:
    """Every page of ListWorkers, one worker per page (so the walk crosses from one kind to the other)."""
    workers: list[pb.Worker] = []
    token = ""
    while True:
        page = await monitor.ListWorkers(pb.ListWorkersRequest(page_size=1, page_token=token, **filters))
        workers += page.workers
        token = page.next_page_token
        if not token:
            return workers


def test_connection_names_are_read_as_bullmq_writes_them() -> None:
    queue = base64.b64encode(b"orders:eu").decode()
    assert parse_worker_name(f"bull:{queue}", "bull") == ("orders:eu", "")
    assert parse_worker_name(f"bull:{queue}:w:billing-1", "bull") == ("orders:eu", "billing-1")
    assert parse_worker_name(f"bull:{queue}:qe", "bull") is None  # QueueEvents, not a worker
    assert parse_worker_name(f"other:{queue}", "bull") is None
    assert parse_worker_name("", "bull") is None
    # Python bullmq writes the queue in plain text.
    assert parse_worker_name("bull:py-mail:w:py-plain", "bull") == ("py-mail", "py-plain")
    assert parse_worker_name("bull:orders:eu", "bull") == ("orders:eu", "")


async def test_node_and_python_workers_without_the_sdk_are_seen_once_each(
    suite: LocalSuite, redis_url: str, authority: TokenAuthority
) -> None:
    bull = suite.queue_prefix
    channels: list[Any] = []
    node = await start_produce(redis_url, bull, "node-orders", "work")
    plain = Worker("py-mail", _idle, {"connection": redis_url, "prefix": bull, "name": "py-plain"})
    sdk = InstrumentedWorker(
        "sdk-reports",
        _idle,
        {"connection": redis_url, "prefix": bull},
        target=suite.target,
        token=authority.mint("sdk-1", "worker", worker="sdk-1"),
        worker_id="sdk-1",
    )
    await sdk.start()
    try:
        viewer = _monitor(suite, authority, "viewer", channels)

        last: list[object] = []

        async def listed() -> bool:
            reply = await viewer.ListWorkers(pb.ListWorkersRequest(page_size=50))
            queues = sorted((w.kind, w.report.queues[0]) for w in reply.workers)
            last[:] = [queues, reply.connection_scan]
            return queues == [
                (pb.WORKER_KIND_INSTRUMENTED, "sdk-reports"),
                (UNINSTRUMENTED, "node-orders"),
                (UNINSTRUMENTED, "py-mail"),
            ]

        try:
            await until(listed, 30, "both uninstrumented workers and the SDK worker listed")
        except AssertionError as missing:
            raise AssertionError(f"{missing}; last listing: {last}") from None
        # Not a race won: two more reads of CLIENT LIST later, the SDK worker is still listed once.
        first = (await viewer.ListWorkers(pb.ListWorkersRequest())).connection_scan.scan_time.ToMilliseconds()

        async def scanned_twice() -> bool:
            reply = await viewer.ListWorkers(pb.ListWorkersRequest())
            return reply.connection_scan.scan_time.ToMilliseconds() > first + SCAN * 1000

        await until(scanned_twice, 10, "two more scans")
        assert await listed()

        reply = await _check_uninstrumented(viewer, bull)
        seen_node = next(w for w in reply.workers if w.connection.queue == "node-orders")

        # Pages walk the instrumented workers, then the uninstrumented ones, each once.
        walked = [w.report.worker_id for w in await _all_workers(viewer)]
        assert walked == ["sdk-1", *sorted(w.report.worker_id for w in reply.workers)]
        assert await _all_workers(viewer, status=pb.WORKER_STATUS_OFFLINE) == []
        got = await viewer.GetWorker(pb.GetWorkerRequest(worker_id=seen_node.report.worker_id))
        assert got.worker.connection.worker_name == "node-worker-1"

        # The queue's online workers count both kinds, each once (a queue exists once it had a job).
        for name in ("py-mail", "sdk-reports"):
            queue = Queue(name, {"connection": redis_url, "prefix": bull})
            await queue.add("ping", {})
            await queue.close()
        for queue in ("node-orders", "py-mail", "sdk-reports"):
            detail = await viewer.GetQueue(pb.GetQueueRequest(queue=queue))
            assert detail.queue.online_workers == 1, queue

        # No SDK, no commands: said so, not queued for nobody.
        operator = _monitor(suite, authority, "operator", channels)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await operator.QuietWorker(
                pb.QuietWorkerRequest(worker_id=seen_node.report.worker_id, reason="deploy")
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(refused.value)
        assert info is not None and info.reason == "WORKER_UNINSTRUMENTED"
        assert "without the Worker Monitor SDK" in (refused.value.details() or "")

        # Online while connected: the Node worker gone, it is no longer listed.
        await node.stop()

        async def node_gone() -> bool:
            found = await viewer.ListWorkers(pb.ListWorkersRequest(kind=UNINSTRUMENTED))
            return [w.connection.queue for w in found.workers] == ["py-mail"]

        await until(node_gone, 15, "the stopped Node worker no longer listed")
    finally:
        await node.stop()
        await plain.close()
        await sdk.close()
        for channel in channels:
            await channel.close()


async def test_a_redis_refusing_client_list_or_gone_says_so(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    # Managed Redis services deny CLIENT LIST by ACL; so does this one.
    watched = RedisProcess(
        tmp_path / "watched", options=("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-client")
    )
    await watched.start()
    local = await start_local_suite(
        tmp_path,
        redis,
        redis_url,
        prefix,
        authority,
        targets=("heartbeat", "monitor"),
        connection_scan_seconds=SCAN,
        queue_redis_url=watched.url,
    )
    channels: list[Any] = []
    try:
        viewer = _monitor(local, authority, "viewer", channels)

        async def status_is(wanted: int) -> bool:
            reply = await viewer.ListWorkers(pb.ListWorkersRequest())
            return reply.connection_scan.status == wanted

        await until(lambda: status_is(pb.CONNECTION_SCAN_STATUS_REFUSED), 15, "CLIENT LIST refused")
        scan = (await viewer.ListWorkers(pb.ListWorkersRequest())).connection_scan
        assert "refuses CLIENT LIST" in scan.detail and "cannot be seen" in scan.detail

        await watched.kill()
        await until(lambda: status_is(pb.CONNECTION_SCAN_STATUS_FAILED), 20, "the watched Redis gone")
        scan = (await viewer.ListWorkers(pb.ListWorkersRequest())).connection_scan
        assert "did not answer CLIENT LIST" in scan.detail
    finally:
        for channel in channels:
            await channel.close()
        await local.stop()
        with contextlib.suppress(Exception):
            await watched.stop()


async def _check_uninstrumented(viewer: Any, bull: str) -> pb.ListWorkersResponse:
    """The uninstrumented listing: the Node and the Python worker with their connections; the SDK worker
    only as instrumented, its report naming its own connections."""
    reply = await viewer.ListWorkers(pb.ListWorkersRequest(kind=UNINSTRUMENTED))
    assert reply.connection_scan.status == pb.CONNECTION_SCAN_STATUS_OK
    by_queue = {w.connection.queue: w for w in reply.workers}
    seen_node = by_queue["node-orders"]
    encoded = base64.b64encode(b"node-orders").decode()
    assert seen_node.status == pb.WORKER_STATUS_ONLINE
    assert seen_node.connection.worker_name == "node-worker-1"
    assert seen_node.connection.client_name == f"{bull}:{encoded}:w:node-worker-1"
    assert seen_node.connection.addr.startswith("127.0.0.1:")
    assert seen_node.report.hostname == "127.0.0.1"
    assert seen_node.connection.age.seconds >= 2
    assert seen_node.connection.client_id > 0
    # Python bullmq names every pooled connection: still one worker.
    assert by_queue["py-mail"].connection.worker_name == "py-plain"
    assert by_queue["py-mail"].connection.client_name == f"{bull}:py-mail:w:py-plain"
    # The SDK worker is instrumented only, and its report names its own connections.
    [own] = (await viewer.ListWorkers(pb.ListWorkersRequest(kind=pb.WORKER_KIND_INSTRUMENTED))).workers
    assert own.report.worker_id == "sdk-1" and own.report.redis_clients
    assert own.report.redis_clients[0].addr.startswith("127.0.0.1:")
    return reply
