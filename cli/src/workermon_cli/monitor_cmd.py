"""`workermon queues` and `workermon audit`: MonitorService's board and audit log, over gRPC."""

from __future__ import annotations

import grpc

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.client import open_channel, stub
from workermon_core.settings import Settings

from .runtime import authority_for


def _client(settings: Settings, target: str | None) -> tuple[pb_grpc.MonitorServiceStub, grpc.aio.Channel]:
    token = authority_for(settings).mint("workermon-cli", "viewer", ttl_seconds=300)
    channel = open_channel(target or f"{settings.grpc_host}:{settings.grpc_port}", token)
    return stub(pb_grpc.MonitorServiceStub, channel), channel


async def show_queues(settings: Settings, target: str | None) -> int:
    """Print the overview line and one line per queue; returns the number of queues."""
    client, channel = _client(settings, target)
    try:
        overview = await client.GetOverview(pb.GetOverviewRequest(), timeout=10)
        queues = (await client.ListQueues(pb.ListQueuesRequest(), timeout=10)).queues
    finally:
        await channel.close()
    rate = f"{overview.success_rate_24h:.1%}" if overview.HasField("success_rate_24h") else "-"
    print(
        f"{overview.queues_total} queues, {overview.workers_online} workers online, "
        f"{overview.jobs_per_minute} jobs/min, {overview.failures_per_minute} failures/min, "
        f"24 h success {rate}"
    )
    print(
        f"{'QUEUE':20} {'STATUS':9} {'WAIT':>6} {'ACTIVE':>6} {'DELAY':>6} {'FAILED':>7} {'DONE':>7} "
        f"{'JOBS/m':>6} {'P95 ms':>7} {'WORKERS':>7}  TOP FAILURE"
    )
    for q in queues:
        status = pb.QueueStatus.Name(q.status).removeprefix("QUEUE_STATUS_")
        workers = str(q.online_workers) if q.HasField("online_workers") else "-"
        p95 = f"{q.processing.p95_ms:.0f}" if q.processing.samples else "-"
        top = q.top_failure_categories[0].category if q.top_failure_categories else ""
        c = q.counts
        print(
            f"{q.display_name[:20]:20} {status:9} {c.waiting + c.prioritized:>6} {c.active:>6} "
            f"{c.delayed:>6} {c.failed:>7} {c.completed:>7} {q.jobs_per_minute:>6} {p95:>7} "
            f"{workers:>7}  {top}"
        )
    return len(queues)


async def show_audit(settings: Settings, target: str | None, limit: int) -> int:
    """Print the newest audit entries; returns how many."""
    client, channel = _client(settings, target)
    try:
        page = await client.ListAuditLogs(pb.ListAuditLogsRequest(page_size=limit), timeout=10)
    finally:
        await channel.close()
    print(f"{'TIME':19} {'ACTOR':16} {'ACTION':22} {'TARGET':30} OUTCOME")
    for entry in page.audit_logs:
        when = entry.time.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        action = pb.AuditAction.Name(entry.action).removeprefix("AUDIT_ACTION_")
        outcome = pb.AuditOutcome.Name(entry.outcome).removeprefix("AUDIT_OUTCOME_")
        print(f"{when:19} {entry.actor[:16]:16} {action:22} {entry.entity_id[:30]:30} {outcome}")
    return len(page.audit_logs)
