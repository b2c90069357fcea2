"""Worker Monitor worker-side SDK.

:class:`HeartbeatClient` reports any worker process to the heartbeat service and carries out the
commands sent to it; :class:`workermon_sdk.bullmq.InstrumentedWorker` (extra ``bullmq``) does all of it
for bullmq workers.
"""

from workermon_sdk.backoff import Backoff
from workermon_sdk.client import (
    SDK_NAME,
    CommandAck,
    CommandHandler,
    CommandLedger,
    CommandType,
    HeartbeatClient,
    WorkerCommand,
    WorkerState,
    WorkerStats,
    __version__,
    default_worker_id,
)

__all__ = [
    "SDK_NAME",
    "Backoff",
    "CommandAck",
    "CommandHandler",
    "CommandLedger",
    "CommandType",
    "HeartbeatClient",
    "WorkerCommand",
    "WorkerState",
    "WorkerStats",
    "__version__",
    "default_worker_id",
]
