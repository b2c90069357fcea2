"""MonitorService's own messages, filled from HeartbeatService's and CollectorService's.

MonitorService is what other teams call, so it carries its own copies of the worker, command and
history messages; `MIRRORS` lists each public message beside the internal one it is filled from (the
tests check every pair still mirrors field for field).
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message

from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.protos import recast

__all__ = [
    "MIRRORS",
    "command",
    "connection_scan",
    "history_points",
    "trend_points",
    "worker",
    "worker_kind",
    "worker_status",
]

MIRRORS: tuple[tuple[type[Message], type[Message]], ...] = (
    (pb.Worker, hb_pb.Worker),
    (pb.Command, hb_pb.Command),
    (pb.TrendPoint, col_pb.SnapshotPoint),
    (pb.JobCounts, col_pb.JobCounts),
    (pb.Durations, col_pb.Durations),
    (pb.WorkerHistoryPoint, hb_pb.WorkerHistoryPoint),
    (pb.ConnectionScan, hb_pb.ConnectionScan),
)


def worker(message: hb_pb.Worker) -> pb.Worker:
    """A registry worker as MonitorService shows it (without the beat's duration sketches)."""
    return recast(message, pb.Worker)


def connection_scan(message: hb_pb.ConnectionScan) -> pb.ConnectionScan:
    """Whether uninstrumented workers can be seen, as MonitorService says it."""
    return recast(message, pb.ConnectionScan)


def worker_kind(value: pb.WorkerKind.ValueType) -> hb_pb.WorkerKind.ValueType:
    """A public worker kind filter as HeartbeatService's."""
    return hb_pb.WorkerKind.Value(pb.WorkerKind.Name(value))


def command(message: hb_pb.Command) -> pb.Command:
    """A worker command as MonitorService shows it."""
    return recast(message, pb.Command)


def trend_points(points: Iterable[col_pb.SnapshotPoint]) -> list[pb.TrendPoint]:
    """Collector buckets as trend points."""
    return [recast(point, pb.TrendPoint) for point in points]


def history_points(points: Iterable[hb_pb.WorkerHistoryPoint]) -> list[pb.WorkerHistoryPoint]:
    """A worker's per-minute history points as MonitorService shows them."""
    return [recast(point, pb.WorkerHistoryPoint) for point in points]


def worker_status(value: pb.WorkerStatus.ValueType) -> hb_pb.WorkerStatus.ValueType:
    """A public worker status filter as HeartbeatService's."""
    return hb_pb.WorkerStatus.Value(pb.WorkerStatus.Name(value))
