"""InstrumentedWorker against real bullmq workers on a real Redis (the heartbeat service is down)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from bullmq import AbortError, AbortSignal, Job, Queue
from bullmq.backends.redis_backend import RedisBackend

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb2
from workermon_sdk import Backoff, CommandType, WorkerState
from workermon_sdk.bullmq import COOPERATIVE_RESULT, PREEMPTED_RESULT, InstrumentedWorker, accepts_signal

WaitUntil = Callable[..., Awaitable[None]]
Factory = Callable[..., Awaitable[InstrumentedWorker]]


@pytest.fixture
async def make_worker(queue: Queue, closed_target: str, sdk_redis_url: str) -> AsyncIterator[Factory]:
    started: list[InstrumentedWorker] = []

    async def make(processor: Callable[..., Awaitable[Any]], **kwargs: Any) -> InstrumentedWorker:
        opts = {"connection": sdk_redis_url, **kwargs.pop("opts", {})}
        worker = InstrumentedWorker(
            queue.name,
            processor,
            opts,
            target=closed_target,
            token="token",
            worker_id="sdk-test",
            backoff=Backoff(base=0.05, cap=0.2),
            **kwargs,
        )
        started.append(worker)
        await worker.start()
        return worker

    yield make
    for worker in started:
        await worker.close(force=True)


def command(command_type: CommandType, job_id: str = "", reason: str = "") -> Any:
    return hb_pb2.WorkerCommand(command_id="c", type=command_type.value, job_id=job_id, reason=reason)


async def job_state(queue: Queue, job_id: str) -> str:
    return str(await queue.getJobState(job_id))


async def wait_for_state(queue: Queue, job_id: str, state: str, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        current = await job_state(queue, job_id)
        while current != state:
            await asyncio.sleep(0.05)
            current = await job_state(queue, job_id)


# Processors pick their behaviour from job.data so one worker covers every case.
async def cooperative(job: Job, token: str, signal: AbortSignal) -> str:
    if job.data.get("quick"):
        return "done"
    try:
        await asyncio.wait_for(signal.wait(), timeout=30)
    except TimeoutError:
        return "slept"
    raise AbortError(signal.reason)


async def oblivious(job: Job, token: str) -> str:
    if not job.data.get("quick"):
        await asyncio.sleep(30)
    return "done"


async def deaf(job: Job, token: str, signal: AbortSignal) -> str:
    # Takes the signal but never looks at it.
    if not job.data.get("quick"):
        await asyncio.sleep(30)
    return "done"


def test_accepts_signal() -> None:
    async def two(job: Any, token: Any) -> None: ...
    async def three(job: Any, token: Any, signal: Any) -> None: ...
    async def varargs(*args: Any) -> None: ...
    async def keyword_only(job: Any, token: Any, *, signal: Any) -> None: ...

    assert not accepts_signal(two)
    assert accepts_signal(three)
    assert accepts_signal(varargs)
    assert not accepts_signal(keyword_only)


async def test_counts_processed_and_failed(queue: Queue, make_worker: Factory, wait_until: WaitUntil) -> None:
    async def processor(job: Job, token: str) -> str:
        if job.data["fail"]:
            raise ValueError("bad input")
        return "ok"

    worker = await make_worker(processor, opts={"concurrency": 3})
    for n in range(5):
        await queue.add("job", {"fail": n % 2 == 1}, {"attempts": 1})
    await wait_until(lambda: worker.stats().processed_total + worker.stats().failed_total == 5)
    stats = worker.stats()
    assert (stats.processed_total, stats.failed_total, stats.active_jobs) == (3, 2, 0)
    report = worker.heartbeat.build_report()
    assert (report.processed_total, report.failed_total) == (3, 2)
    assert report.concurrency == 3
    assert list(report.queues) == [queue.name]
    assert report.worker_id == "sdk-test"


async def test_reports_running_jobs(queue: Queue, make_worker: Factory, wait_until: WaitUntil) -> None:
    release = asyncio.Event()

    async def processor(job: Job, token: str) -> None:
        await release.wait()

    worker = await make_worker(processor, opts={"concurrency": 2}, gauges=lambda: {"browsers": 2})
    jobs = [await queue.add("job", {}) for _ in range(2)]
    await wait_until(lambda: worker.stats().active_jobs == 2)
    report = worker.heartbeat.build_report()
    assert sorted(report.active_job_ids) == sorted(job.id for job in jobs)
    assert report.active_jobs == 2
    assert dict(report.gauges.custom) == {"browsers": 2.0}
    release.set()
    await wait_until(lambda: worker.stats().processed_total == 2)
    assert worker.active_job_ids == []


@pytest.mark.parametrize(
    ("processor", "expected"),
    [(cooperative, COOPERATIVE_RESULT), (oblivious, PREEMPTED_RESULT), (deaf, PREEMPTED_RESULT)],
    ids=["cooperative", "no-signal-param", "ignores-signal"],
)
async def test_cancel_job(
    queue: Queue,
    make_worker: Factory,
    wait_until: WaitUntil,
    processor: Callable[..., Awaitable[str]],
    expected: str,
) -> None:
    worker = await make_worker(processor, cancel_grace_seconds=0.3)
    job = await queue.add("long", {}, {"attempts": 3})
    await wait_until(lambda: job.id in worker.active_job_ids)

    ok, result = await worker.handle_command(command(CommandType.CANCEL_JOB, job.id, "operator said so"))

    assert ok, result
    assert expected in result
    assert job.id in result
    # Failed for good despite attempts=3: a cancelled job is not retried.
    await wait_for_state(queue, job.id, "failed")
    failed = await queue.getJob(job.id)
    assert failed is not None
    assert "operator said so" in failed.failedReason
    assert worker.stats().failed_total == 1
    assert worker.active_job_ids == []

    # The worker carries on with other jobs.
    after = await queue.add("quick", {"quick": True})
    await wait_for_state(queue, after.id, "completed")
    assert worker.stats().processed_total == 1
    assert worker.state is WorkerState.RUNNING


async def test_cancel_job_not_running_here(make_worker: Factory) -> None:
    worker = await make_worker(oblivious)
    ok, result = await worker.handle_command(command(CommandType.CANCEL_JOB, "12345"))
    assert not ok
    assert result == "job 12345 is not running on this worker"


async def test_cancel_job_that_completes_within_the_grace(
    queue: Queue, make_worker: Factory, wait_until: WaitUntil
) -> None:
    async def processor(job: Job, token: str) -> str:
        await asyncio.sleep(0.3)
        return "done"

    worker = await make_worker(processor, cancel_grace_seconds=2)
    job = await queue.add("job", {})
    await wait_until(lambda: job.id in worker.active_job_ids)
    ok, result = await worker.cancel_job(job.id)
    assert ok
    assert "completed before it could be cancelled" in result
    await wait_for_state(queue, job.id, "completed")


async def test_quiet_and_resume(queue: Queue, make_worker: Factory, wait_until: WaitUntil) -> None:
    worker = await make_worker(oblivious)
    ok, _ = await worker.handle_command(command(CommandType.QUIET))
    assert ok
    assert worker.state is WorkerState.QUIET
    assert worker.heartbeat.build_report().state == hb_pb2.WORKER_STATE_QUIET
    job = await queue.add("quick", {"quick": True})
    await asyncio.sleep(1.0)
    assert await job_state(queue, job.id) == "waiting"

    ok, _ = await worker.handle_command(command(CommandType.RESUME))
    assert ok
    assert worker.state is WorkerState.RUNNING
    await wait_for_state(queue, job.id, "completed")


async def test_stop_finishes_active_jobs_then_closes(
    queue: Queue, make_worker: Factory, wait_until: WaitUntil
) -> None:
    async def processor(job: Job, token: str) -> str:
        await asyncio.sleep(0.5)
        return "done"

    worker = await make_worker(processor)
    job = await queue.add("job", {})
    await wait_until(lambda: job.id in worker.active_job_ids)

    ok, result = await worker.handle_command(command(CommandType.STOP, reason="deploy"))

    assert ok, result
    assert worker.state is WorkerState.STOPPING
    assert (await worker.handle_command(command(CommandType.RESUME)))[0] is False
    async with asyncio.timeout(10):
        await worker.wait_closed()
    assert await job_state(queue, job.id) == "completed"
    assert worker.stats().processed_total == 1
    assert not worker.heartbeat.running


async def test_unknown_command_is_refused(make_worker: Factory) -> None:
    worker = await make_worker(oblivious)
    ok, result = await worker.handle_command(command(CommandType.UNSPECIFIED))
    assert not ok
    assert "unsupported" in result


class _LostCancelFetch:
    """bullmq's idle fetch (RedisBackend.waitForJob) as it behaves when a cancellation is lost.

    On Python 3.11 redis-py's socket write (asyncio.wait_for) can swallow the cancellation that bullmq's
    close() sends its idle BZPOPMIN; the fetch then goes on inside redis-py's retries for minutes. The
    first `ignored` cancellations are swallowed; `release` ends the fetch as cancelled in any case.
    """

    def __init__(self, ignored: int) -> None:
        self.ignored = ignored
        self.waiting = asyncio.Event()
        self.release = asyncio.Event()
        self.cancels_seen = 0

    async def idle_worker(self, monkeypatch: pytest.MonkeyPatch, make_worker: Factory) -> InstrumentedWorker:
        """A worker with this fetch in place, once it waits for a job."""

        async def wait_for_job(backend: RedisBackend, block_timeout: float) -> None:
            await self.run()

        monkeypatch.setattr(RedisBackend, "waitForJob", wait_for_job)
        worker = await make_worker(oblivious, close_timeout=0.3)
        async with asyncio.timeout(10):
            await self.waiting.wait()
        return worker

    async def run(self) -> None:
        self.waiting.set()
        while True:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancels_seen += 1
                if self.cancels_seen > self.ignored:
                    raise
            else:
                # Ends as a cancelled fetch would: bullmq then leaves Redis alone.
                raise asyncio.CancelledError


@pytest.mark.parametrize("force", [True, False], ids=["forced", "graceful"])
async def test_close_is_bounded_when_bullmq_loses_the_cancellation_of_its_fetch(
    monkeypatch: pytest.MonkeyPatch, make_worker: Factory, force: bool, caplog: pytest.LogCaptureFixture
) -> None:
    fetch = _LostCancelFetch(ignored=1)
    worker = await fetch.idle_worker(monkeypatch, make_worker)

    async with asyncio.timeout(10):  # without the bound: as long as redis-py retries, minutes
        await worker.close(force=force)

    assert fetch.cancels_seen == 2, "the lost cancellation was sent again"
    assert "did not close within 0.3 s; cancelling its remaining tasks" in caplog.text
    bullmq_worker = worker.workers[worker.queues[0]]
    assert bullmq_worker.waiting is None
    assert all(task.done() for task in bullmq_worker.processing)
    assert all(task.done() for task in worker._run_tasks)
    assert not worker.heartbeat.running


async def test_graceful_close_gives_up_on_a_bullmq_worker_that_ignores_every_cancellation(
    monkeypatch: pytest.MonkeyPatch, make_worker: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    fetch = _LostCancelFetch(ignored=1_000_000)
    worker = await fetch.idle_worker(monkeypatch, make_worker)
    bullmq_worker = worker.workers[worker.queues[0]]
    leftovers = [*bullmq_worker.processing, bullmq_worker.waiting]
    try:
        # bullmq's graceful close waits for the fetch, which never ends.
        async with asyncio.timeout(10):
            await worker.close()
        assert "ignored the cancellation of its tasks; giving up on it" in caplog.text
        assert not worker.heartbeat.running
    finally:
        fetch.release.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*worker._run_tasks, *leftovers, return_exceptions=True)
