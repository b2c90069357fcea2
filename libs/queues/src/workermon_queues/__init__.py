"""Worker Monitor's queue backends: read and drive job queues behind one interface."""

from workermon_queues.backend import (
    EventBatch,
    FinishedJob,
    QueueBackend,
    QueueEvent,
    QueueState,
)
from workermon_queues.bullmq import MAX_EXAMINED, MAX_PAGE_SIZE, BullMQBackend, BullMQJobs
from workermon_queues.classify import DEFAULT_RULES, FailureClassifier, parse_rules
from workermon_queues.counts import COUNT_FIELDS, JobCounts
from workermon_queues.jobs import (
    CLEANABLE_STATES,
    JOB_STATES,
    JobActions,
    JobDetail,
    JobIsActive,
    JobPage,
    JobSummary,
    TimelineEntry,
)

__all__ = [
    "CLEANABLE_STATES",
    "COUNT_FIELDS",
    "DEFAULT_RULES",
    "JOB_STATES",
    "MAX_EXAMINED",
    "MAX_PAGE_SIZE",
    "BullMQBackend",
    "BullMQJobs",
    "EventBatch",
    "FailureClassifier",
    "FinishedJob",
    "JobActions",
    "JobCounts",
    "JobDetail",
    "JobIsActive",
    "JobPage",
    "JobSummary",
    "QueueBackend",
    "QueueEvent",
    "QueueState",
    "TimelineEntry",
    "parse_rules",
]
