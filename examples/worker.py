"""A BullMQ worker reporting to Worker Monitor.

    export WORKER_ID=example-1
    WORKERMON_TOKEN=$(uv run workermon token --role worker --sub example --worker $WORKER_ID) \
    QUEUE_REDIS_URL=redis://127.0.0.1:6379 uv run python examples/worker.py

It processes the `example` queue, beats every few seconds, obeys QUIET / RESUME / STOP / CANCEL_JOB
sent from Worker Monitor, and says goodbye on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from bullmq import AbortSignal, Job

from workermon_sdk.bullmq import InstrumentedWorker


async def process(job: Job, token: str, abort: AbortSignal) -> Any:
    """Pretend to work for a second; stop early when an operator cancels the job."""
    for step in range(10):
        abort.throw_if_aborted()
        await asyncio.sleep(0.1)
        await job.updateProgress((step + 1) * 10)
    return {"echo": job.data}


async def main() -> None:
    worker = InstrumentedWorker(
        os.environ.get("QUEUE", "example"),
        process,
        {"connection": os.environ.get("QUEUE_REDIS_URL", "redis://127.0.0.1:6379"), "concurrency": 4},
        target=os.environ.get("WORKERMON_TARGET", "127.0.0.1:50051"),
        token=os.environ["WORKERMON_TOKEN"],
        worker_id=os.environ.get("WORKER_ID"),  # default: <hostname>-<pid>
        labels={"team": "example"},
        version="1.0.0",
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.close(reason="signal")))
    await worker.run()  # returns after close(), or after a STOP command


if __name__ == "__main__":
    asyncio.run(main())
