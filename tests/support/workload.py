"""What the fault tests run against the suite: a BullMQ producer, its completion, notifications received,
the collector's minutes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import grpc
from bullmq import Queue

from tests.support.webhooks import HttpReceiver
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc


async def produce(queue: Queue, added: list[str]) -> None:
    """A job every 200 ms until cancelled; an add that fails (Redis gone) is not counted and tried again
    after a pause, one that succeeded is in `added` and must finish."""
    n = 0
    while True:
        n += 1
        try:
            job = await queue.add("work", {"n": n})
        except Exception:
            await asyncio.sleep(0.5)
            continue
        added.append(str(job.id))
        await asyncio.sleep(0.2)


async def all_done(queue: Queue, added: list[str]) -> bool:
    """Whether every job in `added` has finished (completed or failed for good)."""
    counts = await queue.getJobCounts("completed", "failed")
    return bool(counts["completed"] + counts["failed"] >= len(set(added)))


def worker_down_notifications(receiver: HttpReceiver, worker_id: str) -> int:
    """How many WORKER_DOWN notifications naming `worker_id` the receiver accepted."""
    bodies = [json.dumps(r.body) for r in receiver.accepted]
    return sum(1 for body in bodies if worker_id in body and "WORKER_DOWN" in body)


async def minute_points(channel: grpc.aio.Channel, queue: str) -> list[col_pb.SnapshotPoint]:
    """The queue's minute points over the last hour, gaps included ([] while the collector does not
    answer)."""
    request = col_pb.QuerySnapshotsRequest(queue=queue)
    end = int(time.time()) + 60
    request.start_time.FromSeconds(end - 3600)
    request.end_time.FromSeconds(end)
    request.step.FromSeconds(60)
    with contextlib.suppress(grpc.aio.AioRpcError):
        return list((await col_grpc.CollectorServiceStub(channel).QuerySnapshots(request, timeout=5)).points)
    return []
