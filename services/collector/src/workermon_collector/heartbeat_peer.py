"""What the collector asks HeartbeatService: online workers per queue, and the workers' job timings."""

from __future__ import annotations

from collections.abc import Sequence

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as hb_grpc
from workermon_core.peer import Peer

from . import sketches

TIMEOUT_SECONDS = 2.0


class HeartbeatPeer:
    """What the collector reads from HeartbeatService, through a peer the process owns (and closes)."""

    def __init__(self, peer: Peer[hb_grpc.HeartbeatServiceStub]) -> None:
        self._peer = peer

    def _stub(self) -> hb_grpc.HeartbeatServiceStub:
        return self._peer.stub

    async def online(self) -> dict[str, int]:
        """Online workers per queue."""
        reply = await self._stub().GetWorkerSummary(hb_pb.GetWorkerSummaryRequest(), timeout=TIMEOUT_SECONDS)
        return {q.queue: q.online for q in reply.queues}

    async def timings(self, queues: Sequence[str], minute_ms: int) -> dict[str, hb_pb.JobTimings]:
        """The workers' merged timings per queue for one minute (queues without any are absent)."""
        found: dict[str, hb_pb.JobTimings] = {}
        for start in range(0, len(queues), 1000):
            request = hb_pb.GetQueueTimingsRequest(queues=queues[start : start + 1000])
            request.minute_time.FromMilliseconds(minute_ms)
            reply = await self._stub().GetQueueTimings(request, timeout=TIMEOUT_SECONDS)
            found.update({t.queue: t for t in reply.timings})
        return found


def to_sketch(message: hb_pb.DurationSketch) -> DDSketch | None:
    """A worker-reported sketch as a DDSketch of the suite's accuracy; None if empty or of another mapping."""
    if message.count <= 0 or abs(message.gamma - sketches.GAMMA) > 1e-9:
        return None
    store = DenseStore()
    for key, count in message.bins.items():
        store.add(key, count)
    sketch = sketches.new_sketch()
    BaseDDSketch.__init__(
        sketch,
        mapping=LogarithmicMapping(sketches.RELATIVE_ACCURACY),
        store=store,
        negative_store=DenseStore(),
        zero_count=message.zero_count,
    )
    # Totals travel with the bins; ddsketch keeps them in these fields.
    sketch._count = message.count
    sketch._sum = message.sum
    sketch._min = message.min
    sketch._max = message.max
    return sketch
