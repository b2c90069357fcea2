"""BullMQ on Redis: the queue backend (reads) and the job browser and actions."""

from .backend import BullMQBackend, StreamEntry, build_events
from .flows import BullMQFlows
from .jobs import MAX_EXAMINED, MAX_PAGE_SIZE, BullMQJobs

__all__ = [
    "MAX_EXAMINED",
    "MAX_PAGE_SIZE",
    "BullMQBackend",
    "BullMQFlows",
    "BullMQJobs",
    "StreamEntry",
    "build_events",
]
