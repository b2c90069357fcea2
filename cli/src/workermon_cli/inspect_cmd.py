"""`workermon workers`: list the registry over gRPC, as any client would."""

from __future__ import annotations

import time

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
