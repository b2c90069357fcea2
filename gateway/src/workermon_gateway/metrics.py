"""`GET /metrics`: the suite's queues and workers, and the gateway's own requests, for Prometheus.

Served at `/metrics` (not under the base path) WITHOUT authentication, like most exporters: the gateway
binds to 127.0.0.1 by default (WORKERMON_HTTP_HOST), so only the host can scrape it. When the gateway is
exposed on another address, block `/metrics` at the proxy or let only the Prometheus network reach it.

Queue and worker figures are read at scrape time (nothing is cached between scrapes): one ListQueues,
one SummarizeQueues and one GetWorkerSummary, concurrently, each with a short deadline. A service that
does not answer has its families left out and `workermon_upstream_up{service=...} 0`; the exposition is
still valid.

Families (all per queue carry the label `queue`):

- `workermon_upstream_up{service}`: 1 when the service answered this scrape.
- `workermon_queue_jobs{queue,state}` (MonitorService): jobs per BullMQ state now.
- `workermon_queue_paused{queue}` (MonitorService).
- `workermon_queue_latency_seconds{queue}` (MonitorService): age of the oldest waiting job at the last
  collected minute; absent while no job waits (or before the first collection).
- `workermon_queue_completed_total`, `workermon_queue_failed_total` (CollectorService): exact counters
  since monitoring of the queue began, as of the last collected minute (so they move once a minute).
- `workermon_queue_processing_seconds{queue,quantile}` (CollectorService): processing time quantiles
  0.5/0.95/0.99 over the last 15 minutes (DDSketch, 1% relative accuracy). A GAUGE, not a summary:
  the window's count and sum are not cumulative, so exposing them as _count/_sum would make rate()
  lie. `workermon_queue_processing_jobs_15m` says how many jobs the quantiles stand on.
- `workermon_queue_wait_seconds{queue,quantile}` (CollectorService): wait time (added to started)
  quantiles over the last 15 minutes, the same shape as the processing time, with
  `workermon_queue_wait_jobs_15m`; only for queues MonitorService lists (left out when it does not
  answer), so a label never comes from history alone.
- `workermon_workers_online`, `workermon_workers_offline`, `workermon_queue_workers_online{queue}`
  (HeartbeatService; queues known to MonitorService without an online worker read 0).
- `workermon_queue_workers_online_unlisted`, `workermon_metrics_queues_unlisted{source}`: see below.

Bounded labels. Queue names that workers report (heartbeats) are the workers' say-so: a worker, or a
token that beats as many workers as it likes, could name a million queues. So a `queue` label takes
only the queues MonitorService lists (the queues that exist), plus at most
WORKERMON_METRICS_MAX_UNLISTED_QUEUES other names (in name order); the rest are not labelled:
their online workers are summed in `workermon_queue_workers_online_unlisted`, and
`workermon_metrics_queues_unlisted{source="heartbeat"|"collector"}` counts the names left out. A
separate family rather than a catch-all `queue="other"`, which a real queue could be called.
- `workermon_http_requests_total{method,route,code}`, `workermon_http_request_duration_seconds{method,route}`
  (this gateway; `route` is the route template, never the raw path).
- process_* and python_* families of the gateway process.

- `workermon_incidents_open{type,severity,status}` (IncidentService: open incidents, pending ones included
  with status PENDING); left out, with `workermon_upstream_up{service="incidents"} 0`, when it does not
  answer - a constant 0 would tell alerting rules "no incidents" when nothing is watching.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import structlog
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.peer import Peer

from .settings import GatewaySettings

log = structlog.get_logger("workermon.gateway.metrics")
T = TypeVar("T")

SCRAPE_DEADLINE_SECONDS = 2.0
DEFAULT_MAX_UNLISTED_QUEUES = 50
# Open incidents are counted from one page; more than this open at once is itself the news.
MAX_INCIDENTS = 200
# The state label values are MonitorService's JobCounts fields, so a state added there is exported too.
JOB_STATES = tuple(field.name for field in mon_pb.JobCounts.DESCRIPTOR.fields)
QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"


class RequestMetricsState:
    """The gateway's request counter and latency histogram, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "workermon_http_requests",
            "HTTP requests answered by the gateway, by route template and status code.",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "workermon_http_request_duration_seconds",
            "Time to answer an HTTP request (for an event stream: time until the stream opened).",
            ["method", "route"],
            registry=self.registry,
        )


REQUEST_METRICS = RequestMetricsState()
"""What `RequestMetrics` records into by default, and what `/metrics` serves."""


def route_template(scope: Scope) -> str:
    """The template of the route that served `scope` ("/api/v1/queues/{queue}"), or "unmatched"."""
    route = scope.get("route")
    if isinstance(route, Mount):
        path = route.path + "/{path}"
    elif isinstance(route, Route):
        path = route.path
    else:
        return UNMATCHED_ROUTE
    # Inside a Mount the router names only the inner route; the mount's prefix is in root_path.
    prefix = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))) :]
    return prefix + str(path)


class RequestMetrics:
    """ASGI middleware counting requests and timing them by route template (bounded cardinality)."""

    def __init__(self, app: ASGIApp, state: RequestMetricsState = REQUEST_METRICS) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and record it once its response is sent (or has failed)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        code: int | None = None
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            route = route_template(scope)
            self.state.requests.labels(method, route, str(status)).inc()
            self.state.duration.labels(method, route).observe(time.perf_counter() - started)

        async def send_and_record(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
                headers = dict(message.get("headers", ()))
                # An event stream never "finishes": its time to open is what is worth measuring.
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    await send(message)
                    record(code)
                    return
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and code:
                record(code)

        try:
            await self.app(scope, receive, send_and_record)
        except BaseException:
            record(code or 500)
            raise
        if code is not None:
            record(code)


def metrics_middleware() -> list[Middleware]:
    """The middleware to install in the app so `/metrics` includes the gateway's own requests."""
    return [Middleware(RequestMetrics)]


@dataclass(frozen=True, slots=True)
class Readings:
    """One scrape's answers; None for a service that did not answer."""

    queues: mon_pb.ListQueuesResponse | None
    summaries: col_pb.SummarizeQueuesResponse | None
    workers: hb_pb.GetWorkerSummaryResponse | None
    incidents: inc_pb.ListIncidentsResponse | None = None


class _Families:
    """A fixed list of metric families, as prometheus_client's exposition wants a collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


class QueueLabels:
    """Which queue names may be a `queue` label value in one scrape (see "Bounded labels" above)."""

    def __init__(self, readings: Readings, max_unlisted: int) -> None:
        self.listed = {q.name for q in readings.queues.queues} if readings.queues is not None else set()
        others: set[str] = set()
        if readings.workers is not None:
            others.update(entry.queue for entry in readings.workers.queues)
        if readings.summaries is not None:
            others.update(summary.queue for summary in readings.summaries.summaries)
        # Name order, so the same names keep their series from one scrape to the next.
        self.extra = set(sorted(others - self.listed)[:max_unlisted])
        self.unlisted: dict[str, int] = {}

    def allows(self, name: str, source: str) -> bool:
        """Whether `name` gets its own series; a name left out is counted for `source`."""
        if name in self.listed or name in self.extra:
            return True
        self.unlisted[source] = self.unlisted.get(source, 0) + 1
        return False

    def family(self) -> Metric:
        """`workermon_metrics_queues_unlisted{source}`: the names left out of this scrape's labels."""
        unlisted = GaugeMetricFamily(
            "workermon_metrics_queues_unlisted",
            "Queue names reported by a service but not given a queue label in this scrape "
            "(not a queue MonitorService lists, and past WORKERMON_METRICS_MAX_UNLISTED_QUEUES others).",
            labels=["source"],
        )
        for source in ("collector", "heartbeat"):
            unlisted.add_metric([source], self.unlisted.get(source, 0))
        return unlisted


def queue_families(readings: Readings, max_unlisted: int = DEFAULT_MAX_UNLISTED_QUEUES) -> list[Metric]:
    """The suite's families from one scrape's answers (left out for a service that did not answer)."""
    labels = QueueLabels(readings, max_unlisted)
    families: list[Metric] = [_upstream_family(readings)]
    if readings.incidents is not None:
        families.append(_incident_family(readings.incidents))
    if readings.queues is not None:
        families += _queue_state_families(readings.queues)
    if readings.summaries is not None:
        families += _summary_families(readings.summaries, labels)
        if readings.queues is not None:
            families += _wait_families(readings.summaries, readings.queues)
    if readings.workers is not None:
        families += _worker_families(readings.workers, readings.queues, labels)
    families.append(labels.family())
    return families


def _upstream_family(readings: Readings) -> Metric:
    """`workermon_upstream_up`: which services answered this scrape."""
    up = GaugeMetricFamily(
        "workermon_upstream_up", "1 when the service answered this scrape, else 0.", labels=["service"]
    )
    up.add_metric(["monitor"], 1 if readings.queues is not None else 0)
    up.add_metric(["collector"], 1 if readings.summaries is not None else 0)
    up.add_metric(["heartbeat"], 1 if readings.workers is not None else 0)
    up.add_metric(["incidents"], 1 if readings.incidents is not None else 0)
    return up


def _incident_family(incidents: inc_pb.ListIncidentsResponse) -> Metric:
    """`workermon_incidents_open`: the open incidents tallied by type, severity and status."""
    open_incidents = GaugeMetricFamily(
        "workermon_incidents_open",
        "Open incidents (PENDING, ACTIVE or ACKNOWLEDGED) by type, severity and status.",
        labels=["type", "severity", "status"],
    )
    tally: dict[tuple[str, str, str], int] = {}
    for incident in incidents.incidents:
        key = (
            inc_pb.IncidentType.Name(incident.type).removeprefix("INCIDENT_TYPE_"),
            inc_pb.Severity.Name(incident.severity).removeprefix("SEVERITY_").lower(),
            inc_pb.IncidentStatus.Name(incident.status).removeprefix("INCIDENT_STATUS_"),
        )
        tally[key] = tally.get(key, 0) + 1
    for key in sorted(tally):
        open_incidents.add_metric(list(key), tally[key])
    return open_incidents


def _queue_state_families(queues: mon_pb.ListQueuesResponse) -> list[Metric]:
    """MonitorService's families: jobs per state, paused, and waiting latency per queue."""
    jobs = GaugeMetricFamily(
        "workermon_queue_jobs", "Jobs in each BullMQ state now.", labels=["queue", "state"]
    )
    paused = GaugeMetricFamily("workermon_queue_paused", "1 when the queue is paused.", labels=["queue"])
    latency = GaugeMetricFamily(
        "workermon_queue_latency_seconds",
        "Age of the oldest waiting job at the last collected minute (absent while none waits).",
        labels=["queue"],
    )
    for queue in queues.queues:
        for state in JOB_STATES:
            jobs.add_metric([queue.name, state], getattr(queue.counts, state))
        paused.add_metric([queue.name], 1 if queue.paused else 0)
        if queue.HasField("latency_ms"):
            latency.add_metric([queue.name], queue.latency_ms / 1000)
    return [jobs, paused, latency]


def _summary_families(summaries: col_pb.SummarizeQueuesResponse, labels: QueueLabels) -> list[Metric]:
    """CollectorService's families: cumulative outcomes and the 15-minute processing quantiles."""
    completed = CounterMetricFamily(
        "workermon_queue_completed",
        "Jobs completed since monitoring of the queue began (exact), as of the last collected minute.",
        labels=["queue"],
    )
    failed = CounterMetricFamily(
        "workermon_queue_failed",
        "Jobs failed for good since monitoring of the queue began (exact), as of the last collected minute.",
        labels=["queue"],
    )
    processing = GaugeMetricFamily(
        "workermon_queue_processing_seconds",
        "Processing time quantile over the last 15 minutes (DDSketch, 1% accuracy). "
        "A windowed gauge, not a cumulative summary.",
        labels=["queue", "quantile"],
    )
    measured = GaugeMetricFamily(
        "workermon_queue_processing_jobs_15m",
        "Jobs whose processing time the quantiles are computed from (last 15 minutes).",
        labels=["queue"],
    )
    for summary in summaries.summaries:
        if not labels.allows(summary.queue, "collector"):
            continue
        if summary.HasField("latest"):
            completed.add_metric([summary.queue], summary.latest.completed_cumulative)
            failed.add_metric([summary.queue], summary.latest.failed_cumulative)
        window = summary.processing_15m
        measured.add_metric([summary.queue], window.samples)
        if window.samples > 0:
            for quantile, field in QUANTILES:
                processing.add_metric([summary.queue, quantile], getattr(window, field) / 1000)
    return [completed, failed, processing, measured]


def _wait_families(
    summaries: col_pb.SummarizeQueuesResponse, queues: mon_pb.ListQueuesResponse
) -> list[Metric]:
    """The 15-minute wait-time quantiles of the queues MonitorService discovered."""
    wait = GaugeMetricFamily(
        "workermon_queue_wait_seconds",
        "Wait time (added to started) quantile over the last 15 minutes (DDSketch, 1% accuracy). "
        "A windowed gauge, not a cumulative summary.",
        labels=["queue", "quantile"],
    )
    measured = GaugeMetricFamily(
        "workermon_queue_wait_jobs_15m",
        "Jobs whose wait time the quantiles are computed from (last 15 minutes).",
        labels=["queue"],
    )
    discovered = {queue.name for queue in queues.queues}
    for summary in summaries.summaries:
        if summary.queue not in discovered:
            continue
        window = summary.wait_15m
        measured.add_metric([summary.queue], window.samples)
        if window.samples > 0:
            for quantile, field in QUANTILES:
                wait.add_metric([summary.queue, quantile], getattr(window, field) / 1000)
    return [wait, measured]


def _worker_families(
    workers: hb_pb.GetWorkerSummaryResponse, queues: mon_pb.ListQueuesResponse | None, labels: QueueLabels
) -> list[Metric]:
    """HeartbeatService's families: workers online and offline, and online per queue."""
    online = GaugeMetricFamily("workermon_workers_online", "Workers online now.")
    online.add_metric([], workers.online)
    offline = GaugeMetricFamily(
        "workermon_workers_offline", "Workers seen within the retention window but not online."
    )
    offline.add_metric([], workers.offline)
    per_queue = GaugeMetricFamily(
        "workermon_queue_workers_online", "Online workers taking jobs from the queue.", labels=["queue"]
    )
    unlisted = GaugeMetricFamily(
        "workermon_queue_workers_online_unlisted",
        "Online workers summed over the queues they report that have no queue label "
        "(see workermon_metrics_queues_unlisted); a worker taking jobs from two such queues counts twice.",
    )
    counts: dict[str, int] = {}
    rest = 0
    for entry in workers.queues:
        if labels.allows(entry.queue, "heartbeat"):
            counts[entry.queue] = entry.online
        else:
            rest += entry.online
    # A queue without an online worker reads 0 rather than being absent, so `== 0` alerts can fire on it.
    if queues is not None:
        for queue in queues.queues:
            counts.setdefault(queue.name, 0)
    for name in sorted(counts):
        per_queue.add_metric([name], counts[name])
    unlisted.add_metric([], rest)
    return [online, offline, per_queue, unlisted]


async def _ask(service: str, make: Callable[[], Awaitable[T]]) -> T | None:
    try:
        # Inside the try: opening the stub can fail too (a bad target), which is the service not answering.
        return await make()
    except Exception as exc:
        log.warning("metrics_upstream_failed", service=service, error=f"{type(exc).__name__}: {exc}")
        return None


async def read_upstreams(
    monitor: Peer[mon_grpc.MonitorServiceStub],
    collector: Peer[col_grpc.CollectorServiceStub],
    heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
    deadline: float = SCRAPE_DEADLINE_SECONDS,
    incidents: Peer[inc_grpc.IncidentServiceStub] | None = None,
) -> Readings:
    """One ListQueues, SummarizeQueues, GetWorkerSummary and ListIncidents (open), at the same time."""

    async def open_incidents() -> inc_pb.ListIncidentsResponse | None:
        if incidents is None:
            return None
        return await _ask(
            "incidents",
            lambda: incidents.stub.ListIncidents(
                inc_pb.ListIncidentsRequest(open_only=True, page_size=MAX_INCIDENTS), timeout=deadline
            ),
        )

    queues, summaries, workers, open_list = await asyncio.gather(
        _ask("monitor", lambda: monitor.stub.ListQueues(mon_pb.ListQueuesRequest(), timeout=deadline)),
        _ask(
            "collector",
            lambda: collector.stub.SummarizeQueues(col_pb.SummarizeQueuesRequest(), timeout=deadline),
        ),
        _ask(
            "heartbeat",
            lambda: heartbeat.stub.GetWorkerSummary(hb_pb.GetWorkerSummaryRequest(), timeout=deadline),
        ),
        open_incidents(),
    )
    return Readings(queues, summaries, workers, open_list)


def exposition(
    readings: Readings,
    state: RequestMetricsState = REQUEST_METRICS,
    max_unlisted: int = DEFAULT_MAX_UNLISTED_QUEUES,
) -> bytes:
    """The text exposition of one scrape: the suite's families, the gateway's requests and process."""
    families: list[Metric] = queue_families(readings, max_unlisted)
    families += state.registry.collect()
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        families += collector.collect()
    return generate_latest(_Families(families))


def metrics_routes(
    settings: GatewaySettings,
    monitor: Peer[mon_grpc.MonitorServiceStub],
    collector: Peer[col_grpc.CollectorServiceStub],
    heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
    *,
    incidents: Peer[inc_grpc.IncidentServiceStub] | None = None,
    state: RequestMetricsState = REQUEST_METRICS,
    deadline: float = SCRAPE_DEADLINE_SECONDS,
) -> list[Route]:
    """`GET /metrics` in the Prometheus text format (unauthenticated; see the module docstring).

    The peers should carry the gateway's own identity (`ServiceTokens(authority, "gateway", "viewer").own`).
    /metrics is never under the base path; `settings` gives the bound on unlisted queue labels.
    """
    max_unlisted = settings.metrics_max_unlisted_queues

    async def scrape(request: Request) -> Response:
        readings = await read_upstreams(monitor, collector, heartbeat, deadline, incidents)
        return Response(exposition(readings, state, max_unlisted), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return [Route("/metrics", scrape, methods=["GET"], name="metrics")]
