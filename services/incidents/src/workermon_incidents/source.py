"""The engine's data, read over gRPC: snapshots from CollectorService, workers from HeartbeatService.

Per evaluation: one GetCollectorStatus (which queues the collector covers and its newest minute, read
from Redis), one QuerySnapshots per queue over just the minutes the rules need at a one-minute step
(an indexed range read of ~36 rows each, at most `concurrency` at a time), and ListWorkers pages.
SummarizeQueues would be one call, but it sums 24 hours of rows per queue each time: for 100 queues
a minute the narrow per-queue reads cost the database far less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.peer import Peer
from workermon_core.protos import stamp

from .engine import Reading
from .rules import Point, QueueWindow, WorkerState

WORKERS_PAGE = 500
CALL_TIMEOUT_SECONDS = 10.0


def point_of(message: col_pb.SnapshotPoint) -> Point:
    """A collector bucket as a rules.Point."""
    return Point(
        minute=message.time.ToDatetime(tzinfo=UTC),
        has_data=message.has_data,
        waiting=message.counts.waiting + message.counts.prioritized,
        active=message.counts.active,
        completed=message.completed,
        failed=message.failed,
        paused=message.paused,
        processing_samples=message.processing.samples,
        processing_p95_ms=message.processing.p95_ms,
        online_workers=message.online_workers if message.HasField("online_workers") else None,
    )


def worker_of(message: hb_pb.Worker) -> WorkerState:
    """A HeartbeatService worker as a rules.WorkerState."""
    report = message.report
    return WorkerState(
        worker_id=report.worker_id,
        online=message.status == hb_pb.WORKER_STATUS_ONLINE,
        last_seen=message.last_seen_time.ToDatetime(tzinfo=UTC),
        offline_reason=message.offline_reason,
        hostname=report.hostname,
        queues=tuple(report.queues),
        active_jobs=max(report.active_jobs, len(report.active_job_ids)),
        labels=dict(report.labels),
    )


class GrpcSource:
    """Reads a Reading from the collector and the heartbeat registry."""

    def __init__(
        self,
        collector: Peer[col_grpc.CollectorServiceStub],
        heartbeat: Peer[hb_grpc.HeartbeatServiceStub],
        *,
        concurrency: int = 8,
    ) -> None:
        self.collector = collector
        self.heartbeat = heartbeat
        self.concurrency = concurrency

    async def read(
        self, end: datetime, minutes: int, queues: Sequence[str] | None, extra: Sequence[str]
    ) -> Reading:
        """See engine.Source."""
        reading = Reading()
        names: set[str] = set(queues or ())
        try:
            status = await self.collector.stub.GetCollectorStatus(
                col_pb.GetCollectorStatusRequest(), timeout=CALL_TIMEOUT_SECONDS
            )
            if queues is None:
                names.update(status.queues)
                names.update(e.queue for e in status.errors if e.queue)
                names.update(extra)
        except grpc.aio.AioRpcError as exc:
            reading.errors.append(f"collector: {exc.code().name}: {exc.details()}")
            status = None
        if status is not None or queues is not None:
            await self._windows(reading, sorted(names), end, minutes)
        data_newest = max(
            (p.minute for w in reading.windows.values() for p in w.points if p.has_data), default=None
        )
        if data_newest is not None:
            reading.newest_minute = data_newest
        elif status is not None and status.HasField("last_minute_time") and reading.windows:
            # Collected once, nothing in the window now: as old as the window at least.
            reading.newest_minute = min(
                status.last_minute_time.ToDatetime(tzinfo=UTC), end - timedelta(minutes=minutes)
            )
        reading.workers = await self._workers(reading)
        return reading

    async def _windows(self, reading: Reading, names: list[str], end: datetime, minutes: int) -> None:
        limit = asyncio.Semaphore(self.concurrency)
        step = duration_pb2.Duration(seconds=60)
        start = end - timedelta(minutes=minutes)

        async def one(name: str) -> None:
            async with limit:
                try:
                    reply = await self.collector.stub.QuerySnapshots(
                        col_pb.QuerySnapshotsRequest(
                            queue=name, start_time=stamp(start), end_time=stamp(end), step=step
                        ),
                        timeout=CALL_TIMEOUT_SECONDS,
                    )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.NOT_FOUND:
                        reading.errors.append(f"{name}: {exc.code().name}: {exc.details()}")
                    return
            reading.windows[name] = QueueWindow(name, tuple(point_of(p) for p in reply.points))

        await asyncio.gather(*(one(name) for name in names))

    async def _workers(self, reading: Reading) -> list[WorkerState] | None:
        workers: list[WorkerState] = []
        token = ""
        try:
            while True:
                reply = await self.heartbeat.stub.ListWorkers(
                    hb_pb.ListWorkersRequest(page_size=WORKERS_PAGE, page_token=token),
                    timeout=CALL_TIMEOUT_SECONDS,
                )
                workers.extend(worker_of(w) for w in reply.workers)
                token = reply.next_page_token
                if not token:
                    return workers
        except grpc.aio.AioRpcError as exc:
            reading.errors.append(f"heartbeat: {exc.code().name}: {exc.details()}")
            return None
