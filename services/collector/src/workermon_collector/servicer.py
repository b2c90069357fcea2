"""CollectorService: collect now, query history, report status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf import duration_pb2

from workermon.collector.v1 import collector_service_pb2 as pb
from workermon.collector.v1 import collector_service_pb2_grpc as pb_grpc
from workermon_core import validation
from workermon_core.errors import InvalidArgument, NotFound
from workermon_core.protos import from_ms, stamp
from workermon_core.validation import queue_name
from workermon_queues.counts import COUNT_FIELDS, JobCounts

from .collector import Collector
from .rows import SUMMARY_FIELDS, DurationSummary, SnapshotRow
from .store import SnapshotStore
from .store.parts import Point

MAX_POINTS = 1500


def _durations(summary: DurationSummary | None) -> pb.Durations | None:
    return None if summary is None else pb.Durations(**summary.as_dict())


def snapshot_message(row: SnapshotRow) -> pb.QueueSnapshot:
    """A stored row as the API returns it."""
    message = pb.QueueSnapshot(
        queue=row.queue,
        minute_time=stamp(row.minute),
        counts=pb.JobCounts(**JobCounts.of(row).as_dict()),
        paused=row.paused,
        completed_in_minute=row.completed_in_minute,
        failed_in_minute=row.failed_in_minute,
        retried_in_minute=row.retried_in_minute,
        stalled_in_minute=row.stalled_in_minute,
        counts_approximate=row.counts_approximate,
        processing=_durations(row.processing),
        wait=_durations(row.wait),
        duration_source=row.duration_source,
        failures_by_category=row.failures_by_category,
        completed_cumulative=row.completed_cumulative,
        failed_cumulative=row.failed_cumulative,
        collect_time=stamp(row.collected_at),
        collection_ms=row.collection_ms,
        counters_reset=row.counters_reset,
    )
    if row.oldest_waiting_ms is not None:
        message.oldest_waiting_ms = row.oldest_waiting_ms
    if row.online_workers is not None:
        message.online_workers = row.online_workers
    return message


class CollectorServicer(pb_grpc.CollectorServiceServicer):
    """Serves the collector and the snapshot history."""

    def __init__(self, collector: Collector, store: SnapshotStore) -> None:
        self.collector = collector
        self.store = store

    async def CollectNow(
        self, request: pb.CollectNowRequest, context: grpc.aio.ServicerContext
    ) -> pb.CollectNowResponse:
        """Collect the last full minute for all or the named queues."""
        validation.queue_names(request.queues, "queues")
        result = await self.collector.collect(list(request.queues) or None)
        response = pb.CollectNowResponse(
            minute_time=stamp(result.minute),
            errors=[pb.QueueError(queue=e.queue, message=e.message) for e in result.errors],
        )
        for row, new in zip(result.rows, result.written, strict=True):
            if new or result.database_error:
                response.snapshots.append(snapshot_message(row))
                continue
            # Another cycle wrote this minute first: return what is stored, not our second reading.
            stored = await self.store.get(row.queue, row.minute)
            response.snapshots.append(snapshot_message(stored or row))
            response.already_written.append(row.queue)
        if result.database_error:
            response.errors.append(pb.QueueError(queue="", message="database: " + result.database_error))
        return response

    async def QuerySnapshots(
        self, request: pb.QuerySnapshotsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QuerySnapshotsResponse:
        """A queue's history, bucketed by step, gaps marked."""
        queue_name(request.queue, "queue")
        now = from_ms(int(self.collector.clock() * 1000))
        end = validation.timestamp(request.end_time, "end_time") if request.HasField("end_time") else now
        if request.HasField("start_time"):
            start = validation.timestamp(request.start_time, "start_time")
        elif end < datetime.min.replace(tzinfo=UTC) + timedelta(hours=1):
            raise InvalidArgument("end_time", "leaves no hour before it for the default range")
        else:
            start = end - timedelta(hours=1)
        if end <= start:
            raise InvalidArgument("end_time", "must be after start_time")
        if end - start > timedelta(days=31):
            raise InvalidArgument("start_time", "the range may span at most 31 days")
        if request.HasField("step"):
            wanted = validation.duration(request.step, "step")
            try:
                _, step = self.store.plan(start, end, wanted)
            except ValueError as exc:
                raise InvalidArgument("step", str(exc)) from None
        else:
            step = self._default_step(start, end)
        points, resolution = await self.store.query(request.queue, start, end, step)
        if not any(p.has_data for p in points) and request.queue not in await self.store.queues():
            raise NotFound(f"queue {request.queue!r} has no snapshots", reason="QUEUE_NOT_FOUND")
        step_message = duration_pb2.Duration()
        step_message.FromTimedelta(step)
        response = pb.QuerySnapshotsResponse(queue=request.queue, step=step_message, resolution=resolution)
        for point in points:
            fill_point(response.points.add(), point)
        return response

    def _default_step(self, start: datetime, end: datetime) -> timedelta:
        """The smallest whole-minute step giving at most MAX_POINTS buckets (alignment may need one more)."""
        minutes = max(1, -(-int((end - start).total_seconds()) // (MAX_POINTS * 60)))
        try:
            return self.store.plan(start, end, timedelta(minutes=minutes))[1]
        except ValueError:
            return self.store.plan(start, end, timedelta(minutes=minutes + 1))[1]

    async def SummarizeQueues(
        self, request: pb.SummarizeQueuesRequest, context: grpc.aio.ServicerContext
    ) -> pb.SummarizeQueuesResponse:
        """Latest row, 24-hour totals, last hour's categories and 15-minute durations of every queue."""
        validation.queue_names(request.queues, "queues")
        newest, summaries, overall = await self.store.summarize(list(request.queues))
        response = pb.SummarizeQueuesResponse(processing_15m=_durations(overall))
        if newest is not None:
            response.minute_time.CopyFrom(stamp(newest))
        for summary in summaries:
            item = response.summaries.add(
                queue=summary.queue,
                completed_24h=summary.completed_24h,
                failed_24h=summary.failed_24h,
                minutes_24h=summary.minutes_24h,
                failures_by_category_1h=summary.failures_by_category_1h,
                processing_15m=_durations(summary.processing_15m),
                wait_15m=_durations(summary.wait_15m),
            )
            if summary.latest is not None:
                item.latest.CopyFrom(snapshot_message(summary.latest))
        return response

    async def GetCollectorStatus(
        self, request: pb.GetCollectorStatusRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCollectorStatusResponse:
        """The last cycle, from whichever replica ran it."""
        status = await self.collector.status()
        if status is None:
            return pb.GetCollectorStatusResponse(pending_rows=len(self.collector.pending))
        return pb.GetCollectorStatusResponse(
            last_run_time=stamp(from_ms(status["run_ms"])),
            last_minute_time=stamp(from_ms(status["minute_ms"])),
            last_duration_ms=status["duration_ms"],
            queues_covered=status["queues"],
            errors=[pb.QueueError(queue=q, message=m) for q, m in status["errors"]],
            pending_rows=status["pending"],
            database_error=status["database_error"],
            queues=status.get("names", []),
        )


def _fill_durations(target: pb.Durations, value: DurationSummary) -> None:
    for name in SUMMARY_FIELDS:
        setattr(target, name, getattr(value, name))


def fill_point(message: pb.SnapshotPoint, point: Point) -> None:
    """Write a store point into a response's point in place (a gap carries only its time).

    Fields are set directly rather than built and copied: a day at one-minute steps is 1,440 points,
    and the temporary messages doubled the time to build the response.
    """
    message.time.seconds = int(point.time.timestamp())
    message.has_data = point.has_data
    if not point.has_data:
        return
    if point.counts is not None:
        c, counts = point.counts, message.counts
        for name in COUNT_FIELDS:
            setattr(counts, name, getattr(c, name))
    message.paused = point.paused
    message.completed = point.completed
    message.failed = point.failed
    message.retried = point.retried
    message.stalled = point.stalled
    message.approximate = point.approximate
    if point.processing is not None:
        _fill_durations(message.processing, point.processing)
    if point.wait is not None:
        _fill_durations(message.wait, point.wait)
    if point.oldest_waiting_ms is not None:
        message.oldest_waiting_ms = point.oldest_waiting_ms
    if point.online_workers is not None:
        message.online_workers = point.online_workers
    if point.failures_by_category:
        message.failures_by_category.update(point.failures_by_category)
