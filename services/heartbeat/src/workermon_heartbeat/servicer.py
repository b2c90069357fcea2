"""HeartbeatService over the Redis registry."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import defaultdict
from collections.abc import AsyncIterator

import grpc
import redis.exceptions
import structlog
from google.protobuf import duration_pb2, timestamp_pb2

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_core import pagination
from workermon_core import validation as limits
from workermon_core.context import current_subject, principal
from workermon_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from workermon_core.server import Outage, raise_if_cancelling
from workermon_core.validation import queue_name

from . import validation
from .events import EventHub
from .store import Registry, StoredEvent, StoredWorker
from .uninstrumented import ConnectionWatch, SeenWorker

log = structlog.get_logger("workermon.heartbeat")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# A worker search longer than any id or hostname can match nothing; refusing it bounds the scan's work.
MAX_SEARCH_CHARS = 200
MAX_COMMAND_TTL = 3600.0
_EVENT_ID_RE = re.compile(r"^\d{1,20}-\d{1,20}$")
_EVENT_TYPES = {
    "ONLINE": pb.WORKER_EVENT_TYPE_ONLINE,
    "OFFLINE": pb.WORKER_EVENT_TYPE_OFFLINE,
    "UPDATED": pb.WORKER_EVENT_TYPE_UPDATED,
}
# A page token's cursor past the instrumented workers: the uninstrumented ones after the id that follows.
# No worker id contains a NUL, so no instrumented cursor starts with it.
_SEEN_PHASE = "\x00"


class HeartbeatServicer(pb_grpc.HeartbeatServiceServicer):
    """Serves the registry; streams of this replica are woken through Redis pub/sub."""

    def __init__(
        self,
        registry: Registry,
        beat_interval: float,
        command_ttl: float,
        sweep_interval: float = 1.0,
        watch: ConnectionWatch | None = None,
    ) -> None:
        self.registry = registry
        self.watch = watch
        self.beat_interval = duration_pb2.Duration()
        self.beat_interval.FromMilliseconds(int(beat_interval * 1000))
        self.command_ttl = command_ttl
        self.sweep_interval = sweep_interval
        self._wakers: dict[str, set[asyncio.Queue[pb.BeatStreamRequest | bool | None]]] = defaultdict(set)
        self.events = EventHub(registry)

    def _now(self) -> timestamp_pb2.Timestamp:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromMilliseconds(self.registry.now_ms())
        return stamp

    # --- workers ------------------------------------------------------------------------------

    async def Beat(self, request: pb.BeatRequest, context: grpc.aio.ServicerContext) -> pb.BeatResponse:
        """Record one beat; answer with server time, the beat interval and pending commands."""
        validation.report(request.report)
        bound_to(request.report.worker_id, "report.worker_id")
        validation.acks(request.acks)
        beat = await self.registry.beat(request.report, request.acks)
        return pb.BeatResponse(
            server_time=self._now(), beat_interval=self.beat_interval, commands=beat.commands
        )

    async def BeatStream(
        self, request_iterator: AsyncIterator[pb.BeatStreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.BeatStreamResponse]:
        """Beats up, commands down; a command sent on any replica is pushed here within one round trip."""
        # One inbox carries beats, wake-ups (True) and the end of the request stream (None), so each
        # message costs a single await.
        inbox: asyncio.Queue[pb.BeatStreamRequest | bool | None] = asyncio.Queue()
        failure: list[BaseException] = []

        async def pump() -> None:
            try:
                async for item in request_iterator:
                    inbox.put_nowait(item)
            except Exception as exc:
                failure.append(exc)
            inbox.put_nowait(None)

        pump_task = asyncio.create_task(pump())
        worker_id: str | None = None
        try:
            while (item := await inbox.get()) is not None:
                if item is True:
                    commands = await self.registry.deliver(worker_id) if worker_id else []
                    if commands:
                        yield self._stream_response(commands)
                    continue
                assert isinstance(item, pb.BeatStreamRequest)
                validation.report(item.report)
                validation.acks(item.acks)
                if worker_id is None:
                    bound_to(item.report.worker_id, "report.worker_id")
                    worker_id = item.report.worker_id
                    self._wakers[worker_id].add(inbox)
                elif item.report.worker_id != worker_id:
                    raise InvalidArgument("report.worker_id", f"a stream carries one worker ({worker_id!r})")
                yield self._stream_response((await self.registry.beat(item.report, item.acks)).commands)
            if failure:
                raise failure[0]
        finally:
            pump_task.cancel()
            if worker_id is not None:
                self._wakers[worker_id].discard(inbox)
                if not self._wakers[worker_id]:
                    del self._wakers[worker_id]

    def _stream_response(self, commands: list[pb.WorkerCommand]) -> pb.BeatStreamResponse:
        return pb.BeatStreamResponse(
            server_time=self._now(), beat_interval=self.beat_interval, commands=commands
        )

    async def Goodbye(
        self, request: pb.GoodbyeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GoodbyeResponse:
        """Mark the worker OFFLINE now."""
        validation.worker_id(request.worker_id)
        bound_to(request.worker_id, "worker_id")
        limits.text(request.instance_id, "instance_id", 64)
        limits.reason(request.reason)
        await self.registry.goodbye(request.worker_id, request.instance_id, request.reason)
        return pb.GoodbyeResponse()

    # --- reads --------------------------------------------------------------------------------

    def _worker(
        self, stored: StoredWorker, now_ms: int | None = None, into: pb.Worker | None = None
    ) -> pb.Worker:
        online = stored.online_until_ms > (self.registry.now_ms() if now_ms is None else now_ms)
        worker = into if into is not None else pb.Worker()
        worker.report.MergeFromString(stored.report)
        worker.status = pb.WORKER_STATUS_ONLINE if online else pb.WORKER_STATUS_OFFLINE
        worker.offline_reason = "" if online else (stored.offline_reason or "missed beats")
        worker.first_seen_time.FromMilliseconds(stored.first_seen_ms)
        worker.last_seen_time.FromMilliseconds(stored.last_seen_ms)
        worker.kind = pb.WORKER_KIND_INSTRUMENTED
        return worker

    def _scan(self) -> pb.ConnectionScan:
        if self.watch is None:
            return pb.ConnectionScan(status=pb.CONNECTION_SCAN_STATUS_DISABLED, detail="not configured")
        return self.watch.current.message()

    def _seen(self, worker_id: str) -> SeenWorker | None:
        """The uninstrumented worker of that id in the last CLIENT LIST read."""
        return self.watch.current.workers.get(worker_id) if self.watch is not None else None

    async def ListWorkers(
        self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListWorkersResponse:
        """A page of workers: instrumented ones by id, then uninstrumented ones by id; filtered by status,
        kind, queue, host and a search text."""
        size = pagination.page_size(request.page_size, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        if request.status not in pb.WorkerStatus.values():
            raise InvalidArgument("status", "unknown status")
        if request.kind not in pb.WorkerKind.values():
            raise InvalidArgument("kind", "unknown kind")
        if request.queue:
            queue_name(request.queue, "queue")
        limits.text(request.hostname, "hostname", limits.MAX_HOSTNAME)
        limits.text(request.search, "search", MAX_SEARCH_CHARS)
        filters = (request.status, request.queue, request.hostname, request.search, request.kind)
        after = pagination.decode_token(request.page_token, filters)
        response = pb.ListWorkersResponse(connection_scan=self._scan())
        seen_after = after[1:] if after is not None and after.startswith(_SEEN_PHASE) else None
        if seen_after is None and request.kind != pb.WORKER_KIND_UNINSTRUMENTED:
            rows, last = await self.registry.page(
                after,
                size,
                status=request.status,
                queue=request.queue,
                hostname=request.hostname,
                search=request.search,
            )
            now = self.registry.now_ms()
            for row in rows:
                self._worker(row, now, into=response.workers.add())
            if last:
                response.next_page_token = pagination.encode_token(last, filters)
                return response
        if request.kind == pb.WORKER_KIND_INSTRUMENTED or request.status == pb.WORKER_STATUS_OFFLINE:
            return response
        # Uninstrumented workers are online by definition: they are listed while their connection exists.
        scan = self.watch.current if self.watch is not None else None
        if scan is None:
            return response
        start = seen_after or ""
        matching = [
            w
            for w in scan.ordered()
            if w.worker_id > start
            and w.matches(queue=request.queue, hostname=request.hostname, search=request.search)
        ]
        room = size - len(response.workers)
        for seen in matching[:room]:
            seen.message(scan.time_ms, into=response.workers.add())
        if len(matching) > room:
            resume = matching[room - 1].worker_id if room > 0 else start
            response.next_page_token = pagination.encode_token(_SEEN_PHASE + resume, filters)
        return response

    async def GetWorker(
        self, request: pb.GetWorkerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerResponse:
        """One worker, online or recently seen."""
        validation.worker_id(request.worker_id)
        stored = await self.registry.get(request.worker_id)
        if stored is not None:
            return pb.GetWorkerResponse(worker=self._worker(stored))
        seen = self._seen(request.worker_id)
        if seen is not None:
            assert self.watch is not None
            return pb.GetWorkerResponse(worker=seen.message(self.watch.current.time_ms))
        raise NotFound(f"worker {request.worker_id!r} is not known", reason="WORKER_NOT_FOUND")

    async def GetWorkerHistory(
        self, request: pb.GetWorkerHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerHistoryResponse:
        """The worker's per-minute points within the range (the last 24 hours by default)."""
        validation.worker_id(request.worker_id)
        start = (
            limits.timestamp_ms(request.start_time, "start_time") if request.HasField("start_time") else None
        )
        end = limits.timestamp_ms(request.end_time, "end_time") if request.HasField("end_time") else None
        if start is not None and end is not None and end <= start:
            raise InvalidArgument("end_time", "must be after start_time")
        stored = await self.registry.history(request.worker_id)
        known = bool(stored) or self._seen(request.worker_id) is not None
        if not known and await self.registry.get(request.worker_id) is None:
            raise NotFound(f"worker {request.worker_id!r} is not known", reason="WORKER_NOT_FOUND")
        response = pb.GetWorkerHistoryResponse(worker_id=request.worker_id)
        response.step.FromSeconds(60)
        for minute, blob in stored:
            if (start is not None and minute < start) or (end is not None and minute >= end):
                continue
            point = response.points.add()
            point.MergeFromString(blob)
            point.time.FromMilliseconds(minute)
        return response

    async def GetWorkerSummary(
        self, request: pb.GetWorkerSummaryRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetWorkerSummaryResponse:
        """Online and offline counts, and online per queue: instrumented and uninstrumented workers."""
        online, offline, queues = await self.registry.summary()
        per_queue = dict(queues)
        if self.watch is not None:
            seen = self.watch.current.online_per_queue()
            online += sum(seen.values())
            for queue, n in seen.items():
                per_queue[queue] = per_queue.get(queue, 0) + n
        return pb.GetWorkerSummaryResponse(
            online=online,
            offline=offline,
            queues=[pb.QueueWorkerCount(queue=q, online=per_queue[q]) for q in sorted(per_queue)],
        )

    # --- commands -----------------------------------------------------------------------------

    async def SendCommand(
        self, request: pb.SendCommandRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendCommandResponse:
        """Queue a command for an online worker."""
        validation.worker_id(request.worker_id)
        if request.type not in (
            pb.COMMAND_TYPE_QUIET,
            pb.COMMAND_TYPE_RESUME,
            pb.COMMAND_TYPE_STOP,
            pb.COMMAND_TYPE_CANCEL_JOB,
        ):
            raise InvalidArgument("type", "must be QUIET, RESUME, STOP or CANCEL_JOB")
        if request.type == pb.COMMAND_TYPE_CANCEL_JOB and not request.job_id:
            raise InvalidArgument("job_id", "is required for CANCEL_JOB")
        if len(request.job_id) > 256:
            raise InvalidArgument("job_id", "must be at most 256 characters")
        if len(request.reason) > 500:
            raise InvalidArgument("reason", "must be at most 500 characters")
        ttl = self.command_ttl
        if request.HasField("ttl"):
            ttl = request.ttl.ToMilliseconds() / 1000
            if not 0 < ttl <= MAX_COMMAND_TTL:
                raise InvalidArgument("ttl", f"must be between 1 ms and {int(MAX_COMMAND_TTL)} s")
        stored = await self.registry.get(request.worker_id)
        if stored is None and self._seen(request.worker_id) is not None:
            raise FailedPrecondition(
                f"worker {request.worker_id!r} is a BullMQ worker without the Worker Monitor SDK, seen only "
                "by its Redis connection: it cannot take commands (instrument it with the Python or Node "
                "SDK to quiet or stop it, or to cancel its jobs)",
                reason="WORKER_UNINSTRUMENTED",
            )
        if stored is None:
            raise NotFound(f"worker {request.worker_id!r} is not known", reason="WORKER_NOT_FOUND")
        if stored.online_until_ms <= self.registry.now_ms():
            raise FailedPrecondition(
                f"worker {request.worker_id!r} is offline ({stored.offline_reason or 'missed beats'}); "
                "a command would never be delivered",
                reason="WORKER_OFFLINE",
            )
        command = await self.registry.send_command(
            request.worker_id,
            request.type,
            job_id=request.job_id,
            reason=request.reason,
            ttl=ttl,
            requested_by=current_subject(),
        )
        log.info(
            "command_sent",
            worker_id=request.worker_id,
            type=pb.CommandType.Name(request.type),
            command_id=command.command_id,
        )
        return pb.SendCommandResponse(command=command)

    async def GetCommand(
        self, request: pb.GetCommandRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCommandResponse:
        """A command and its status."""
        if not request.command_id or len(request.command_id) > 64:
            raise InvalidArgument("command_id", "must be 1-64 characters")
        command = await self.registry.get_command(request.command_id)
        if command is None:
            raise NotFound(f"command {request.command_id!r} is not known", reason="COMMAND_NOT_FOUND")
        return pb.GetCommandResponse(command=command)

    async def GetQueueTimings(
        self, request: pb.GetQueueTimingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetQueueTimingsResponse:
        """Merge what every worker reported for each queue in the minute."""
        limits.queue_names(request.queues, "queues", required=True)
        minute = limits.timestamp_ms(request.minute_time, "minute_time")
        if minute % 60_000:
            raise InvalidArgument("minute_time", "must be a whole minute")
        stored = await self.registry.timings(list(request.queues), minute)
        response = pb.GetQueueTimingsResponse()
        for queue, blobs in stored.items():
            merged = response.timings.add(queue=queue)
            merged.minute_time.CopyFrom(request.minute_time)
            for blob in blobs:
                part = pb.JobTimings.FromString(blob)
                merge_sketch(merged.processing, part.processing)
                merge_sketch(merged.wait, part.wait)
        return response

    # --- transitions --------------------------------------------------------------------------

    async def WatchWorkers(
        self, request: pb.WatchWorkersRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchWorkersResponse]:
        """Stream transitions after `after_event_id` (or from now)."""
        after = request.after_event_id or None
        if after and not _EVENT_ID_RE.match(after):
            raise InvalidArgument("after_event_id", "must be an event id such as 1700000000000-0")
        async for event in self.events.watch(after):
            yield await self._event(event)

    async def _event(self, event: StoredEvent) -> pb.WatchWorkersResponse:
        response = pb.WatchWorkersResponse(
            event_id=event.event_id,
            type=_EVENT_TYPES.get(event.kind, pb.WORKER_EVENT_TYPE_UNSPECIFIED),
            worker_id=event.worker_id,
            reason=event.reason,
        )
        response.event_time.FromMilliseconds(event.time_ms)
        stored = await self.registry.get(event.worker_id)
        if stored is not None:
            response.worker.CopyFrom(self._worker(stored))
        return response

    # --- background ---------------------------------------------------------------------------

    async def run_sweeper(self) -> None:
        """Announce missed beats as OFFLINE and forget old workers, every sweep interval."""
        outage = Outage("registry_sweep")
        while True:
            try:
                expired, forgotten = await self.registry.sweep()
                if expired or forgotten:
                    log.info("registry_swept", offline=expired, forgotten=forgotten)
                outage.ok()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage.failed(exc)
            raise_if_cancelling()
            await outage.pause(self.sweep_interval)

    async def run_command_listener(self) -> None:
        """Wake this replica's streams when a command is queued for their worker."""
        outage = Outage("command_listener")
        while True:
            pubsub = None
            try:
                # A cluster client must know its slots before it can subscribe (a no-op on one server).
                await self.registry.redis.initialize()
                pubsub = self.registry.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.registry.notify_channel)
                outage.ok()
                # Commands queued while we were not subscribed are picked up on the next beat anyway.
                for inboxes in list(self._wakers.values()):
                    for inbox in inboxes:
                        inbox.put_nowait(True)
                async for message in pubsub.listen():
                    worker = message["data"].decode() if isinstance(message["data"], bytes) else ""
                    for inbox in self._wakers.get(worker, ()):
                        inbox.put_nowait(True)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                outage.failed(exc)
                await outage.pause()
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]


def bound_to(worker_id: str, field: str) -> None:
    """Refuse a caller whose token does not speak for `worker_id`: a worker token is bound to a worker id
    or pattern, so one leaked token cannot beat, answer commands or say goodbye as another worker."""
    who = principal.get()
    if who is None or who.may_act_as_worker(worker_id):
        return
    bound = repr(who.worker) if who.worker else "no worker (mint one with `workermon token --worker`)"
    raise PermissionDenied(
        f"this token may not act as worker {worker_id!r} ({field}): it is bound to {bound}",
        reason="WORKER_NOT_BOUND",
        metadata={"worker_id": worker_id, "bound_to": who.worker or ""},
    )


def merge_sketch(into: pb.DurationSketch, other: pb.DurationSketch) -> None:
    """Add `other`'s bins to `into` (same mapping): DDSketches merge exactly by adding counts."""
    if other.count <= 0:
        return
    if into.count and abs(into.gamma - other.gamma) > 1e-12:
        return  # another relative accuracy: its bins mean other ranges; keep what we have
    into.min = other.min if into.count == 0 else min(into.min, other.min)
    into.max = max(into.max, other.max)
    into.gamma = other.gamma
    into.count += other.count
    into.sum += other.sum
    into.zero_count += other.zero_count
    for key, n in other.bins.items():
        into.bins[key] = into.bins.get(key, 0.0) + n
