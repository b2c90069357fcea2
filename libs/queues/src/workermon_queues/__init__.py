"""Worker Monitor's queue backends: read (and later drive) job queues behind one interface."""

from workermon_queues.backend import (
    BullMQBackend,
    EventBatch,
    FinishedJob,
    QueueBackend,
    QueueEvent,
    QueueState,
)
from workermon_queues.classify import DEFAULT_RULES, FailureClassifier, parse_rules

__all__ = [
    "DEFAULT_RULES",
    "BullMQBackend",
    "EventBatch",
    "FailureClassifier",
    "FinishedJob",
    "QueueBackend",
    "QueueEvent",
    "QueueState",
    "parse_rules",
]
