"""The live stream's `incident` events: IncidentService's WatchIncidents, resumed after its last event."""

from __future__ import annotations

import asyncio

from workermon.incidents.v1 import incident_service_pb2 as inc_pb
from workermon.incidents.v1 import incident_service_pb2_grpc as inc_grpc
from workermon_core.peer import Peer

from .sources import WATCH_SETTLE_SECONDS, SourceSink, json_of

INCIDENT = "incident"


class IncidentFollower:
    """Follows WatchIncidents; each change becomes an `incident` event (`event` and `incident` JSON)."""

    name = "incidents"

    def __init__(self, incidents: Peer[inc_grpc.IncidentServiceStub], after_event_id: int = 0) -> None:
        self.incidents = incidents
        self.after_event_id = after_event_id

    async def run(self, sink: SourceSink) -> None:
        """Follow the stream until cancelled; raise when it fails or ends."""
        call = self.incidents.stub.WatchIncidents(
            inc_pb.WatchIncidentsRequest(after_event_id=self.after_event_id)
        )
        # Like WatchWorkers, the server sends nothing until a change: a call still open a moment later
        # has reached it (one that cannot connect fails at once).
        settled = asyncio.get_running_loop().call_later(
            WATCH_SETTLE_SECONDS, lambda: None if call.done() else sink.connected()
        )
        try:
            async for change in call:
                sink.connected()
                self.after_event_id = change.event.id
                sink.publish(INCIDENT, {"event": json_of(change.event), "incident": json_of(change.incident)})
        finally:
            settled.cancel()
            call.cancel()
        raise ConnectionError("WatchIncidents ended")
