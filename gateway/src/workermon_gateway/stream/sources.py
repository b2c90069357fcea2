"""Upstream feeds of the live stream: the overview poller and the WatchWorkers follower, and what a
source is handed to publish through."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from google.protobuf import json_format
from google.protobuf.message import Message

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core.peer import Peer

if TYPE_CHECKING:
    from .hub import LiveStream, StreamEvent


log = structlog.get_logger("workermon.gateway.stream")


OVERVIEW = "overview"


WORKER = "worker"


INCIDENT = "incident"


STATUS = "status"


RESET = "reset"


RPC_TIMEOUT_SECONDS = 5.0


# A WatchWorkers call still open this long after it was sent has been accepted (auth passed).
WATCH_SETTLE_SECONDS = 1.0


def json_of(message: Message) -> dict[str, Any]:
    """A message in the proto3 JSON mapping (lowerCamelCase), zero values included."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


class SourceSink:
    """What a source is handed: publish events, and say its upstream is reachable."""

    def __init__(self, live: LiveStream, name: str) -> None:
        self._live = live
        self.name = name
        self.reached = False

    def publish(self, kind: str, data: dict[str, Any]) -> StreamEvent:
        """Send an event to every client (and keep it for replay)."""
        return self._live.publish(kind, data)

    def connected(self) -> None:
        """The upstream answered: clears an outage (a `status` event) and resets the backoff."""
        self.reached = True
        self._live._set_health(self.name, True)


class Source(Protocol):
    """An upstream feed of events; `run` follows it until cancelled and raises when it fails."""

    name: str

    async def run(self, sink: SourceSink) -> None:
        """Follow the upstream, publishing through `sink`."""
        ...


class OverviewPoller:
    """GetOverview every `interval`; an `overview` event only when the answer changed."""

    name = "monitor"

    def __init__(
        self,
        monitor: Peer[mon_grpc.MonitorServiceStub],
        interval: float,
        timeout: float = RPC_TIMEOUT_SECONDS,
    ) -> None:
        self.monitor = monitor
        self.interval = interval
        self.timeout = timeout
        # Kept across reconnects: an unchanged overview after an outage is not news.
        self._last: dict[str, Any] | None = None

    async def run(self, sink: SourceSink) -> None:
        """Poll until cancelled; a failed call raises (the stream retries with backoff)."""
        while True:
            reply = await self.monitor.stub.GetOverview(mon_pb.GetOverviewRequest(), timeout=self.timeout)
            sink.connected()
            data = json_of(reply)
            if data != self._last:
                self._last = data
                sink.publish(OVERVIEW, data)
            await asyncio.sleep(self.interval)


def worker_event_json(event: hb_pb.WatchWorkersResponse) -> dict[str, Any]:
    """The `worker` event payload for one WatchWorkers transition."""
    return {
        "type": hb_pb.WorkerEventType.Name(event.type),
        "workerId": event.worker_id,
        "time": event.event_time.ToJsonString() if event.HasField("event_time") else None,
        "reason": event.reason,
        "worker": json_of(event.worker) if event.HasField("worker") else None,
    }


class WorkerFollower:
    """Follows WatchWorkers, resuming after the last upstream event id, so an upstream blip loses nothing."""

    name = "heartbeat"

    def __init__(self, heartbeat: Peer[hb_grpc.HeartbeatServiceStub], after_event_id: str = "") -> None:
        self.heartbeat = heartbeat
        self.after_event_id = after_event_id

    async def run(self, sink: SourceSink) -> None:
        """Follow the stream until cancelled; raise when it fails or ends."""
        call = self.heartbeat.stub.WatchWorkers(hb_pb.WatchWorkersRequest(after_event_id=self.after_event_id))
        # The server sends nothing (not even headers) until a transition happens, while a call that
        # cannot connect, or is refused, fails at once: one still open a moment later has reached it.
        settled = asyncio.get_running_loop().call_later(
            WATCH_SETTLE_SECONDS, lambda: None if call.done() else sink.connected()
        )
        try:
            async for event in call:
                sink.connected()
                self.after_event_id = event.event_id
                sink.publish(WORKER, worker_event_json(event))
        finally:
            settled.cancel()
            call.cancel()
        raise ConnectionError("WatchWorkers ended")
