"""BullMQ integration: bullmq workers that report to Worker Monitor and carry out its commands."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import grpc
from bullmq import AbortSignal, DelayedError, Job, UnrecoverableError, WaitingChildrenError, Worker

from workermon_sdk.backoff import Backoff
from workermon_sdk.client import CommandType, HeartbeatClient, WorkerCommand, WorkerState, WorkerStats

logger = logging.getLogger("workermon_sdk")

Processor = Callable[..., Awaitable[Any]]
"""``async (job, token)`` or ``async (job, token, signal)``, as bullmq takes it."""

COOPERATIVE_RESULT = "cancelled cooperatively (processor honoured the abort signal)"
PREEMPTED_RESULT = "processor ignored the abort signal; its task was cancelled"
CLOSE_TIMEOUT = 5.0
IDENTIFY_TIMEOUT = 2.0
"""Seconds a worker waits for CLIENT INFO before it runs anyway (a Redis that does not answer)."""
"""Seconds a bullmq worker gets to close (after its jobs ended) before its leftover tasks are cancelled."""


@dataclass(eq=False)
class _ActiveJob:
    worker: Worker
    job: Job
    task: asyncio.Future[Any]
    cancel_reason: str | None = None
    preempted: bool = False


class InstrumentedWorker:
    """One bullmq ``Worker`` per queue, reporting to the heartbeat service and obeying its commands.

    Commands: QUIET stops taking jobs, RESUME takes them again, STOP finishes the active jobs and exits,
    CANCEL_JOB aborts one job (see :meth:`cancel_job`). A cancelled job fails without retries.
    """

    def __init__(
        self,
        queue: str | Sequence[str],
        processor: Processor,
        opts: Mapping[str, Any] | None = None,
        *,
        target: str,
        token: str | Callable[[], str],
        worker_id: str | None = None,
        labels: Mapping[str, str] | None = None,
        version: str = "",
        cancel_grace_seconds: float = 2.0,
        gauges: Callable[[], Mapping[str, float]] | None = None,
        use_stream: bool = True,
        credentials: grpc.ChannelCredentials | None = None,
        backoff: Backoff | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        """Configure the workers; nothing runs until :meth:`start` or :meth:`run`.

        ``opts`` are bullmq ``WorkerOptions`` (``connection``, ``concurrency``, ...); ``autorun`` is
        ignored because the workers start with :meth:`start`. ``gauges`` adds named readings to every beat.
        ``cancel_grace_seconds`` is how long a cancelled job may take to honour its abort signal before
        its task is cancelled. ``close_timeout`` bounds a close: a bullmq worker still not closed that
        long after its last job ended has its remaining tasks cancelled, and is given up on (with a
        warning) if they do not end within as long again.
        """
        self.queues = [queue] if isinstance(queue, str) else list(queue)
        if not self.queues:
            raise ValueError("InstrumentedWorker needs at least one queue")
        self._processor = processor
        self._wants_signal = accepts_signal(processor)
        self._opts = {**(opts or {}), "autorun": False}
        self._grace = cancel_grace_seconds
        self._close_timeout = close_timeout
        self._gauges = gauges

        self.workers: dict[str, Worker] = {}
        """The bullmq workers, by queue name (filled by :meth:`start`)."""
        self._run_tasks: list[asyncio.Task[None]] = []
        self._active: dict[str, _ActiveJob] = {}
        self._state = WorkerState.RUNNING
        self._processed = 0
        self._failed = 0
        self._shutdown_task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._redis_clients: list[tuple[int, str]] = []

        self.heartbeat = HeartbeatClient(
            target,
            token,
            worker_id=worker_id,
            queues=self.queues,
            labels=labels,
            version=version,
            concurrency=int(self._opts.get("concurrency", 1)) * len(self.queues),
            report=self.stats,
            command_handler=self.handle_command,
            use_stream=use_stream,
            credentials=credentials,
            backoff=backoff,
        )
        """The heartbeat client, started and stopped with the workers."""

    @property
    def state(self) -> WorkerState:
        """RUNNING, QUIET or STOPPING."""
        return self._state

    @property
    def active_job_ids(self) -> list[str]:
        """Ids of the jobs running now (``<queue>:<id>`` when there are several queues)."""
        return list(self._active)

    def stats(self) -> WorkerStats:
        """Return the numbers reported on every beat."""
        return WorkerStats(
            active_jobs=len(self._active),
            processed_total=self._processed,
            failed_total=self._failed,
            active_job_ids=list(self._active),
            state=self._state,
            gauges=dict(self._gauges()) if self._gauges is not None else {},
            redis_clients=self._redis_clients,
        )

    async def start(self) -> None:
        """Start the bullmq workers and the heartbeat in the background; returns at once."""
        if self.workers or self._shutdown_task is not None:
            return
        for queue in self.queues:
            worker = Worker(queue, self._make_processor(queue), dict(self._opts))
            worker.on("completed", self._on_completed)
            worker.on("failed", self._on_failed)
            self.workers[queue] = worker
            self._run_tasks.append(asyncio.create_task(self._run_worker(worker), name=f"bullmq-{queue}"))
        await self.heartbeat.start()

    async def run(self) -> None:
        """Start, then return once the worker has closed (after :meth:`close` or a STOP command)."""
        await self.start()
        await self.wait_closed()

    async def close(self, force: bool = False, reason: str = "worker closed") -> None:
        """Close the workers (waiting for active jobs unless ``force``), then say goodbye.

        A forced close during a graceful one cuts it short.
        """
        if self._shutdown_task is not None and force:
            await asyncio.gather(
                *(w.close(force=True) for w in self.workers.values()), return_exceptions=True
            )
        await self._begin_shutdown(reason, force)

    async def wait_closed(self) -> None:
        """Wait until the workers are closed and the heartbeat has said goodbye."""
        await self._closed.wait()

    async def quiet(self) -> tuple[bool, str]:
        """Stop taking new jobs; the active ones carry on."""
        if self._state is WorkerState.STOPPING:
            return False, "the worker is stopping"
        self._state = WorkerState.QUIET
        await asyncio.gather(*(w.pause(do_not_wait_active=True) for w in self.workers.values()))
        return True, f"quiet: taking no new jobs, {len(self._active)} still active"

    async def resume(self) -> tuple[bool, str]:
        """Take jobs again after :meth:`quiet`."""
        if self._state is WorkerState.STOPPING:
            return False, "the worker is stopping"
        for worker in self.workers.values():
            worker.resume()
        self._state = WorkerState.RUNNING
        return True, "running: taking jobs again"

    async def cancel_job(self, job_id: str, reason: str = "") -> tuple[bool, str]:
        """Cancel one running job; this is what a CANCEL_JOB command does.

        The job's abort signal is aborted first; a processor that does not end within
        ``cancel_grace_seconds`` has its task cancelled. Either way the job fails without retries and
        the worker goes on with other jobs. Returns ``(ok, what happened)``.
        """
        found = self._find(job_id)
        if isinstance(found, str):
            return False, found
        entry = found
        entry.cancel_reason = reason or "cancelled by an operator"
        entry.worker.cancelJob(entry.job.id, entry.cancel_reason)
        await asyncio.wait({entry.task}, timeout=self._grace)
        if entry.task.done():
            if not entry.task.cancelled() and entry.task.exception() is None:
                return True, f"job {job_id} completed before it could be cancelled"
            return True, f"job {job_id} {COOPERATIVE_RESULT}"
        entry.preempted = True
        entry.task.cancel()
        await asyncio.wait({entry.task}, timeout=self._grace)
        if entry.task.done():
            return True, f"job {job_id}: {PREEMPTED_RESULT}"
        return False, f"job {job_id} ignored its abort signal and the cancellation of its task; it still runs"

    async def handle_command(self, command: WorkerCommand) -> tuple[bool, str]:
        """Carry out one command from the heartbeat service; returns ``(ok, result)`` for its ack."""
        match command.type:
            case CommandType.QUIET:
                return await self.quiet()
            case CommandType.RESUME:
                return await self.resume()
            case CommandType.STOP:
                active = len(self._active)
                self._begin_shutdown(f"stop command: {command.reason}" if command.reason else "stop command")
                return True, f"stopping: finishing {active} active jobs, then exiting"
            case CommandType.CANCEL_JOB:
                if not command.job_id:
                    return False, "CANCEL_JOB needs a job_id"
                return await self.cancel_job(command.job_id, command.reason)
            case _:
                return False, f"unsupported command type {command.type}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- internals -----------------------------------------------------------------------------------

    def _make_processor(self, queue: str) -> Callable[[Job, str, AbortSignal], Awaitable[Any]]:
        # Declaring the signal parameter makes bullmq create an abort controller for every job.
        async def process(job: Job, token: str, signal: AbortSignal) -> Any:
            return await self._process(queue, job, token, signal)

        return process

    async def _process(self, queue: str, job: Job, token: str, signal: AbortSignal) -> Any:
        key = self._key(queue, job.id)
        args = (job, token, signal) if self._wants_signal else (job, token)
        # The processor runs in a task of its own so that a CANCEL_JOB can cancel it alone: this
        # wrapper survives to report the job as failed and bullmq's worker loop is untouched.
        task = asyncio.ensure_future(self._processor(*args))
        entry = _ActiveJob(self.workers[queue], job, task)
        self._active[key] = entry
        started_ms = int(getattr(job, "processedOn", None) or time.time() * 1000)
        task.add_done_callback(lambda _: self._record_timing(queue, job, started_ms))
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if entry.preempted and (current is None or current.cancelling() == 0):
                raise UnrecoverableError(f"cancelled: {entry.cancel_reason}") from None
            raise
        except (DelayedError, WaitingChildrenError, UnrecoverableError):
            raise
        except Exception as exc:
            if entry.cancel_reason is not None:
                raise UnrecoverableError(f"cancelled: {entry.cancel_reason}") from exc
            raise
        finally:
            if self._active.get(key) is entry:
                del self._active[key]

    def _record_timing(self, queue: str, job: Job, started_ms: int) -> None:
        # Removed-on-completion jobs leave no timestamps behind; this is the only record of their duration.
        enqueued = getattr(job, "timestamp", None)
        self.heartbeat.record_job(
            queue, started_ms, int(time.time() * 1000), int(enqueued) if enqueued else None
        )

    def _key(self, queue: str, job_id: str) -> str:
        return str(job_id) if len(self.queues) == 1 else f"{queue}:{job_id}"

    def _find(self, job_id: str) -> _ActiveJob | str:
        entry = self._active.get(job_id)
        if entry is not None:
            return entry
        matches = [e for e in self._active.values() if str(e.job.id) == job_id]
        if len(matches) == 1:
            return matches[0]
        if matches:
            return f"job id {job_id} is running on several queues here; name it as <queue>:<id>"
        return f"job {job_id} is not running on this worker"

    def _begin_shutdown(self, reason: str, force: bool = False) -> asyncio.Task[None]:
        if self._shutdown_task is None:
            self._state = WorkerState.STOPPING
            self.heartbeat.request_beat()
            self._shutdown_task = asyncio.create_task(
                self._shutdown(reason, force), name="workermon-shutdown"
            )
        return self._shutdown_task

    async def _shutdown(self, reason: str, force: bool) -> None:
        try:
            # bullmq's close() cuts the connection under a run() that is still naming its Redis clients,
            # which then stalls in redis retries; give a starting worker up to 5 s to finish starting.
            starting = list(zip(self.workers.values(), self._run_tasks, strict=True))
            for _ in range(500):
                if all(w.running or t.done() for w, t in starting):
                    break
                await asyncio.sleep(0.01)
            await asyncio.gather(*(self._close_worker(w, t, force) for w, t in starting))
        finally:
            await self.heartbeat.stop(goodbye=True, reason=reason)
            self._closed.set()

    async def _close_worker(self, worker: Worker, run: asyncio.Task[None], force: bool) -> None:
        """Close one bullmq worker and wait for its run(), within `close_timeout` once no job runs.

        bullmq's close() cancels its idle fetch (a BZPOPMIN) and waits for it. That cancellation can be
        lost: on Python 3.11 asyncio.wait_for, which redis-py uses to write a command, swallows a
        cancellation that lands as the write completes. The fetch then carries on against the closed
        connection inside redis-py's retries (20 tries, backing off up to 20 s), and close() and run()
        wait for it for minutes. So past the bound the worker's remaining tasks are cancelled again,
        and past twice the bound the worker is given up on: a close never hangs on bullmq.
        """
        closing = asyncio.ensure_future(worker.close(force=force))
        pending: set[asyncio.Future[None]] = {closing, run}
        cancelled = False
        while pending:
            _, pending = await asyncio.wait(pending, timeout=self._close_timeout)
            if not pending:
                break
            if not force and not cancelled and worker.jobs:
                continue  # a graceful close lets the jobs it waits for take as long as they take
            if cancelled:
                logger.warning(
                    "bullmq worker for queue %s ignored the cancellation of its tasks; giving up on it",
                    worker.name,
                )
                break
            logger.warning(
                "bullmq worker for queue %s did not close within %.1f s; cancelling its remaining tasks",
                worker.name,
                self._close_timeout,
            )
            self._cancel_leftovers(worker, run)
            cancelled = True
        failure = closing.exception() if closing.done() and not closing.cancelled() else None
        if failure is not None:
            logger.warning("closing the bullmq worker for queue %s failed: %s", worker.name, failure)
        # A fetch cut short, or a worker closed before its run() got going, can reconnect after close()
        # released the connections; closing the backend again releases those too.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._close_timeout):
                await worker.backend.close(force=True)

    @staticmethod
    def _cancel_leftovers(worker: Worker, run: asyncio.Task[None]) -> None:
        # Past the bound no job of this worker runs (or the close is forced): what is left are fetches
        # and the loop waiting for them.
        if worker.waiting is not None:
            worker.waiting.cancel()
        worker.cancelProcessing()
        run.cancel()

    async def _run_worker(self, worker: Worker) -> None:
        # Before run(): the report must name the connections by the time bullmq names them in Redis.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDENTIFY_TIMEOUT):
                await self._identify_connections(worker)
        try:
            await worker.run()
        except Exception:
            logger.exception("bullmq worker for queue %s stopped", worker.name)

    async def _identify_connections(self, worker: Worker) -> None:
        """Note this worker's Redis connections (their address tells the suite its host as Redis sees it),
        so the suite, which also sees bullmq's named connections in CLIENT LIST, shows this worker once
        rather than again as uninstrumented."""
        backend = worker.backend
        for connection in (backend.blocking_connection, backend.connection):
            if connection is None:
                continue
            try:
                info = await connection.conn.client_info()
            except Exception as exc:  # a Redis without CLIENT INFO (before 6.2) just cannot be matched
                logger.debug("CLIENT INFO failed for queue %s: %s", worker.name, exc)
                continue
            client = (int(info.get("id", 0)), str(info.get("addr", "")))
            if client not in self._redis_clients:
                self._redis_clients.append(client)
        self.heartbeat.request_beat()

    def _on_completed(self, *_: Any) -> None:
        self._processed += 1

    def _on_failed(self, *_: Any) -> None:
        self._failed += 1


def accepts_signal(processor: Callable[..., Any]) -> bool:
    """Return True if ``processor`` takes a third positional argument (bullmq's abort signal)."""
    try:
        parameters = inspect.signature(processor).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 3
