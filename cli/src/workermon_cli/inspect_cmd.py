"""`workermon workers` and `workermon snapshots`: read the suite over gRPC, as any client would."""

from __future__ import annotations

import time

from google.protobuf import duration_pb2, timestamp_pb2

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core.client import open_channel, stub
from workermon_core.settings import Settings

from .runtime import authority_for


async def list_workers(settings: Settings, target: str | None, status: str) -> int:
    """Print every worker page by page; returns the number printed."""
    token = authority_for(settings).mint("workermon-cli", "viewer", ttl_seconds=300)
    channel = open_channel(target or f"{settings.grpc_host}:{settings.grpc_port}", token)
    client = stub(pb_grpc.HeartbeatServiceStub, channel)
    wanted = {
        "all": pb.WORKER_STATUS_UNSPECIFIED,
        "online": pb.WORKER_STATUS_ONLINE,
        "offline": pb.WORKER_STATUS_OFFLINE,
    }[status]
    printed = 0
    token_page = ""
    now = time.time()
    print(
        f"{'WORKER':40} {'STATUS':8} {'QUEUES':24} {'ACTIVE':>6} {'DONE':>8} {'FAILED':>7} {'LAST BEAT':>10}"
    )
    try:
        while True:
            page = await client.ListWorkers(
                pb.ListWorkersRequest(page_size=200, page_token=token_page, status=wanted), timeout=10
            )
            for w in page.workers:
                ago = now - w.last_seen_time.ToMilliseconds() / 1000
                rep = w.report
                status_name = pb.WorkerStatus.Name(w.status).removeprefix("WORKER_STATUS_")
                queues = ",".join(rep.queues)[:24]
                print(
                    f"{rep.worker_id:40} {status_name:8} {queues:24} {rep.active_jobs:>6} "
                    f"{rep.processed_total:>8} {rep.failed_total:>7} {ago:>9.0f}s"
                )
                printed += 1
            token_page = page.next_page_token
            if not token_page:
                break
    finally:
        await channel.close()
    return printed


async def show_snapshots(settings: Settings, target: str | None, minutes: int) -> int:
    """Print the last `minutes` of every queue the collector knows; returns the rows printed."""
    token = authority_for(settings).mint("workermon-cli", "viewer", ttl_seconds=300)
    channel = open_channel(target or f"{settings.grpc_host}:{settings.grpc_port}", token)
    client = stub(col_grpc.CollectorServiceStub, channel)
    printed = 0
    try:
        status = await client.GetCollectorStatus(col_pb.GetCollectorStatusRequest(), timeout=10)
        if not status.HasField("last_run_time"):
            print("no collection has run yet (the first runs within a minute of start)")
            return 0
        queues = sorted(status.queues)
        end = timestamp_pb2.Timestamp()
        end.GetCurrentTime()
        start = timestamp_pb2.Timestamp(seconds=end.seconds - 60 * minutes)
        print(
            f"{'QUEUE':20} {'MINUTE':6} {'WAIT':>6} {'ACTIVE':>6} {'DELAY':>6} {'DONE/m':>7} {'FAIL/m':>7} "
            f"{'P95 ms':>8} {'LATENCY':>8} {'WORKERS':>7}"
        )
        for queue in queues:
            history = await client.QuerySnapshots(
                col_pb.QuerySnapshotsRequest(
                    queue=queue, start_time=start, end_time=end, step=duration_pb2.Duration(seconds=60)
                ),
                timeout=10,
            )
            for point in history.points:
                if not point.has_data:
                    continue
                when = point.time.ToDatetime().strftime("%H:%M")
                latency = (
                    f"{point.oldest_waiting_ms / 1000:.1f}s" if point.HasField("oldest_waiting_ms") else "-"
                )
                online = str(point.online_workers) if point.HasField("online_workers") else "-"
                print(
                    f"{queue[:20]:20} {when:6} {point.counts.waiting:>6} {point.counts.active:>6} "
                    f"{point.counts.delayed:>6} {point.completed:>7} {point.failed:>7} "
                    f"{point.processing.p95_ms:>8.0f} {latency:>8} {online:>7}"
                )
                printed += 1
    finally:
        await channel.close()
    return printed
