"""Background loops stop when the server cancels them, even when a job swallows the cancellation."""

from __future__ import annotations

import asyncio

from workermon_core.background import Every


async def test_every_stops_when_a_job_swallows_the_cancel() -> None:
    started = asyncio.Event()

    async def job() -> None:
        # What a Redis client's timeout does to a cancel landing inside it: an error the job handles.
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return

    task = asyncio.create_task(Every("swallowing", 0.05, job, first_at_once=True)())
    await started.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)
    assert done == {task} and task.cancelled()
