"""/metrics over real HTTP, read from the real services watching real BullMQ queues."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from bullmq import Job, Queue, Worker
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from tests.support.bull import until
from tests.support.services import Services, serve_http, start_services, stop_http
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.peer import Peer, ServiceTokens
from workermon_gateway.metrics import (
    Readings,
    RequestMetricsState,
    exposition,
    metrics_middleware,
    metrics_routes,
)
from workermon_sdk.client import HeartbeatClient

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[Samples, dict[str, str]]:
    """Every sample by (name, labels), and each family's type; raises on an invalid exposition."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def promtool_check(text: str) -> None:
    """`promtool check metrics` when the machine happens to have it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    # Lint remarks (naming advice) go to stdout with exit 0 or 3; a parse error is what we refuse.
    assert "error" not in done.stderr.lower(), done.stderr


async def thing(request: Request) -> JSONResponse:
    return JSONResponse({"thing": request.path_params["thing"]})


@dataclass
class MetricsGateway:
    url: str
    services: Services
    authority: TokenAuthority
    client: httpx.AsyncClient

    async def scrape(self) -> tuple[str, Samples, dict[str, str]]:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples, types = parse(response.text)
        return response.text, samples, types

    def queue(self, name: str) -> Queue:
        return Queue(
            name, {"connection": self.services.redis_url, "prefix": self.services.settings.queue_prefix}
        )


async def _gateway(
    services: Services, authority: TokenAuthority, target: str
) -> AsyncIterator[MetricsGateway]:
    tokens = ServiceTokens(authority, "gateway", "viewer")
    monitor = Peer(target, mon_grpc.MonitorServiceStub, tokens.own)
    collector = Peer(target, col_grpc.CollectorServiceStub, tokens.own)
    heartbeat = Peer(target, hb_grpc.HeartbeatServiceStub, tokens.own)
    routes: list[BaseRoute] = [
        *metrics_routes(services.settings.gateway, monitor, collector, heartbeat),
        Mount("/api", routes=[Route("/v1/things/{thing}", thing)]),
    ]
    url, server, task = await serve_http(routes, metrics_middleware())
    client = httpx.AsyncClient(base_url=url, timeout=10)
    try:
        yield MetricsGateway(url, services, authority, client)
    finally:
        await client.aclose()
        await stop_http(server, task)
        for peer in (monitor, collector, heartbeat):
            await peer.close()


@pytest.fixture
async def metrics_gateway(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> AsyncIterator[MetricsGateway]:
    services, stop = await start_services(
        tmp_path, redis, redis_url, prefix, authority, queues="emails,reports,done", discover_queues=False
    )
    try:
        async for gw in _gateway(services, authority, services.target):
            yield gw
    finally:
        await stop()


async def test_queue_and_worker_families_match_the_queues(metrics_gateway: MetricsGateway) -> None:
    emails, reports, done = (
        metrics_gateway.queue("emails"),
        metrics_gateway.queue("reports"),
        metrics_gateway.queue("done"),
    )
    worker: Worker | None = None
    heartbeat = HeartbeatClient(
        metrics_gateway.services.target,
        metrics_gateway.authority.mint("metrics-worker", "worker", worker="metrics-worker"),
        worker_id="metrics-worker",
        queues=["emails"],
    )
    collector = col_grpc.CollectorServiceStub(
        channel := open_channel(
            metrics_gateway.services.target, metrics_gateway.authority.mint("ops", "operator")
        )
    )
    try:
        for i in range(5):
            await emails.add("mail", {"i": i})
        for i in range(2):
            await emails.add("later", {"i": i}, {"delay": 600_000})
        for i in range(3):
            await reports.add("report", {"i": i})
        await reports.pause()

        async def process(job: Job, token: str) -> Any:
            await asyncio.sleep(0.02)
            if job.data.get("fail"):
                raise RuntimeError("boom")
            return "ok"

        for i in range(4):
            await done.add("ok", {"i": i})
        await done.add("bad", {"fail": True}, {"attempts": 1})
        worker = Worker(
            "done",
            process,
            {
                "connection": metrics_gateway.services.redis_url,
                "prefix": metrics_gateway.services.settings.queue_prefix,
            },
        )
        await heartbeat.start()

        async def settled() -> bool:
            counts = await done.getJobCounts("completed", "failed")
            return bool(counts["completed"] == 4 and counts["failed"] == 1)

        await until(settled, what="4 completed and 1 failed")

        async def collected() -> bool:
            await collector.CollectNow(col_pb.CollectNowRequest())
            _, samples, _ = await metrics_gateway.scrape()
            return (
                value(samples, "workermon_queue_completed_total", queue="done") == 4
                and value(samples, "workermon_queue_failed_total", queue="done") == 1
                and value(samples, "workermon_workers_online") == 1
            )

        await until(collected, limit=30, what="collector totals and the online worker in /metrics")

        text, samples, types = await metrics_gateway.scrape()
        promtool_check(text)
        for service in ("monitor", "collector", "heartbeat"):
            assert value(samples, "workermon_upstream_up", service=service) == 1
        assert value(samples, "workermon_queue_jobs", queue="emails", state="waiting") == 5
        assert value(samples, "workermon_queue_jobs", queue="emails", state="delayed") == 2
        assert value(samples, "workermon_queue_jobs", queue="reports", state="waiting") == 3
        assert value(samples, "workermon_queue_jobs", queue="done", state="completed") == 4
        assert value(samples, "workermon_queue_jobs", queue="done", state="failed") == 1
        assert value(samples, "workermon_queue_paused", queue="reports") == 1
        assert value(samples, "workermon_queue_paused", queue="emails") == 0
        assert value(samples, "workermon_queue_workers_online", queue="emails") == 1
        # Known to MonitorService, no online worker: an explicit 0, which alerting can use.
        assert value(samples, "workermon_queue_workers_online", queue="reports") == 0
        assert value(samples, "workermon_workers_offline") == 0
        assert types["workermon_queue_completed"] == "counter"
        assert types["workermon_queue_processing_seconds"] == "gauge"

        # Processing quantiles are the collector's 15-minute figures, in seconds, when it has any.
        summary = await collector.SummarizeQueues(col_pb.SummarizeQueuesRequest(queues=["done"]))
        window = summary.summaries[0].processing_15m
        assert value(samples, "workermon_queue_processing_jobs_15m", queue="done") == window.samples
        p95 = value(samples, "workermon_queue_processing_seconds", queue="done", quantile="0.95")
        if window.samples:
            assert p95 == pytest.approx(window.p95_ms / 1000)
        else:
            assert p95 is None
        # Not exported until IncidentService exists (a constant 0 would read as "no incidents").
        assert not any(name == "workermon_incidents_open" for name, _ in samples)
    finally:
        if worker is not None:
            await worker.close()
        await heartbeat.stop()
        for queue in (emails, reports, done):
            await queue.close()
        await channel.close()


async def test_queue_names_workers_report_cannot_blow_up_the_labels(metrics_gateway: MetricsGateway) -> None:
    """Workers beating with a thousand bogus queue names: /metrics keeps a bounded number of series."""
    emails = metrics_gateway.queue("emails")
    await emails.add("mail", {})
    channels = []
    workers, per_worker = 20, 64
    bogus = [f"bogus-{w:02}-{q:02}" for w in range(workers) for q in range(per_worker)]
    try:
        for w in range(workers):
            worker_id = f"noisy-{w}"
            channel = open_channel(
                metrics_gateway.services.target,
                metrics_gateway.authority.mint(worker_id, "worker", worker=worker_id),
            )
            channels.append(channel)
            report = hb_pb.WorkerReport(
                worker_id=worker_id,
                instance_id=f"i-{w}",
                queues=[*bogus[w * per_worker : (w + 1) * per_worker - 1], "emails"],
            )
            await hb_grpc.HeartbeatServiceStub(channel).Beat(hb_pb.BeatRequest(report=report))
        names_reported = len(bogus) - workers  # each worker named 63 bogus queues and "emails"
        max_unlisted = metrics_gateway.services.settings.gateway.metrics_max_unlisted_queues

        text, samples, _ = await metrics_gateway.scrape()
        labelled = {
            dict(labels)["queue"] for name, labels in samples if name == "workermon_queue_workers_online"
        }
        # The queue MonitorService lists (the only one of the configured three with a job), and at
        # most max_unlisted other names.
        assert "emails" in labelled and len(labelled) == 1 + max_unlisted
        assert value(samples, "workermon_queue_workers_online", queue="emails") == workers
        assert (
            value(samples, "workermon_metrics_queues_unlisted", source="heartbeat")
            == names_reported - max_unlisted
        )
        # Each bogus queue has one worker online: what has no label of its own is summed, not lost.
        assert value(samples, "workermon_queue_workers_online_unlisted") == names_reported - max_unlisted
        assert sum(1 for line in text.splitlines() if 'queue="bogus-' in line) == max_unlisted
    finally:
        await emails.close()
        for channel in channels:
            await channel.close()


def test_without_monitor_service_every_queue_name_counts_against_the_bound() -> None:
    """MonitorService silent (no list of real queues): still at most max_unlisted labels per scrape."""
    names = [f"q{i:04}" for i in range(500)]
    workers = hb_pb.GetWorkerSummaryResponse(
        online=1, queues=[hb_pb.QueueWorkerCount(queue=name, online=1) for name in names]
    )
    summaries = col_pb.SummarizeQueuesResponse(
        summaries=[col_pb.QueueSummary(queue=name) for name in reversed(names)]
    )
    text = exposition(Readings(None, summaries, workers), RequestMetricsState(), max_unlisted=10).decode()
    samples, _ = parse(text)
    for family in ("workermon_queue_workers_online", "workermon_queue_processing_jobs_15m"):
        labelled = sorted(dict(labels)["queue"] for name, labels in samples if name == family)
        assert labelled == names[:10], family  # the same ones each scrape: the first in name order
    assert value(samples, "workermon_queue_workers_online_unlisted") == 490
    assert value(samples, "workermon_metrics_queues_unlisted", source="heartbeat") == 490
    assert value(samples, "workermon_metrics_queues_unlisted", source="collector") == 490


async def test_request_metrics_by_route_template(metrics_gateway: MetricsGateway) -> None:
    _, before, types = await metrics_gateway.scrape()
    assert types["workermon_http_requests"] == "counter"
    assert types["workermon_http_request_duration_seconds"] == "histogram"
    route = "/api/v1/things/{thing}"

    def count(samples: Samples, name: str, **labels: str) -> float:
        return value(samples, name, **labels) or 0.0

    for n in range(3):
        assert (await metrics_gateway.client.get(f"/api/v1/things/{n}")).status_code == 200
    assert (await metrics_gateway.client.get("/no/such/path/123")).status_code == 404
    assert (await metrics_gateway.client.post("/api/v1/things/9")).status_code == 405

    _, after, _ = await metrics_gateway.scrape()
    name = "workermon_http_requests_total"
    assert (
        count(after, name, method="GET", route=route, code="200")
        - count(before, name, method="GET", route=route, code="200")
        == 3
    )
    assert (
        count(after, name, method="GET", route="unmatched", code="404")
        - count(before, name, method="GET", route="unmatched", code="404")
        == 1
    )
    assert (
        count(after, name, method="POST", route=route, code="405")
        - count(before, name, method="POST", route=route, code="405")
        == 1
    )
    # The scrape before this one was counted too, under its own template.
    assert count(after, name, method="GET", route="/metrics", code="200") >= 1
    hist = "workermon_http_request_duration_seconds_count"
    assert count(after, hist, method="GET", route=route) - count(before, hist, method="GET", route=route) == 3
    # Raw paths never become label values.
    assert not any(dict(labels).get("route", "").endswith(("/0", "/123")) for _, labels in after)


async def test_a_scrape_with_the_services_down_is_still_valid(
    tmp_path: Path, redis: aioredis.Redis, redis_url: str, prefix: str, authority: TokenAuthority
) -> None:
    services, stop = await start_services(tmp_path, redis, redis_url, prefix, authority)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"
    try:
        async for gw in _gateway(services, authority, closed):
            started = asyncio.get_running_loop().time()
            text, samples, types = await gw.scrape()
            assert asyncio.get_running_loop().time() - started < 5
            promtool_check(text)
            for service in ("monitor", "collector", "heartbeat"):
                assert value(samples, "workermon_upstream_up", service=service) == 0
            for family in ("workermon_queue_jobs", "workermon_workers_online", "workermon_queue_completed"):
                assert family not in types
            # The gateway's own families are still there.
            assert "workermon_http_requests" in types
            assert any(name.startswith("process_") for name in types)
    finally:
        await stop()
