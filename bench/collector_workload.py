"""The collector benchmark's BullMQ workload: queues filled with python bullmq, jobs run by its workers.

Every job goes in through `bullmq.Queue.addBulk` and every finished job through a bullmq `Worker`
(manual fetching: `getNextJob`, then `moveToCompleted` / `moveToFailed`), so keys, job hashes and
event streams are exactly what BullMQ writes. Population runs in several processes (the bullmq client
is CPU-bound in Python); `add_jobs` and `process_jobs` are their entry points.
"""

from __future__ import annotations

import asyncio
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bullmq import Queue, Worker

KINDS = ("emails", "billing", "thumbnails", "webhooks", "reports", "search-index", "notifications", "exports")
FAILURES = (
    "Request timed out after 30000 ms",
    "HTTP 429 Too Many Requests",
    "connect ECONNREFUSED 10.0.0.7:5432",
    "TypeError: Cannot read properties of undefined (reading 'id')",
)
# Shares of the jobs added to every queue; the rest wait.
DELAYED_SHARE = 0.07
PRIORITIZED_SHARE = 0.03
# Share of jobs whose processor throws; half of those have a retry left (attempts 2, fixed backoff).
FAILING_SHARE = 0.10
RETRY_BACKOFF_MS = 2_000
# Processing time of a job (a sleep): log-normal around 6 ms, capped.
PROCESSING_MEDIAN_MS = 6.0
PROCESSING_CAP_MS = 200.0


def queue_name(index: int) -> str:
    """Queue names as a fleet has them: a purpose and a number."""
    return f"{KINDS[index % len(KINDS)]}-{index:04d}"


def busy_indexes(queues: int, busy: int) -> list[int]:
    """The queues that also have workers, spread evenly over all of them."""
    busy = min(busy, queues)
    return sorted({k * queues // busy for k in range(busy)}) if busy else []


def job_spec(rng: random.Random, kind: str, number: int) -> dict[str, Any]:
    """One `addBulk` entry: mostly plain waiting jobs, some delayed, some prioritized, some failing."""
    data: dict[str, Any] = {
        "to": f"user{rng.randrange(1_000_000)}@example.com",
        "template": kind,
        "account": rng.randrange(100_000),
        "n": number,
    }
    opts: dict[str, Any] = {}
    draw = rng.random()
    if draw < DELAYED_SHARE:
        opts["delay"] = rng.randint(1, 6) * 3_600_000
    elif draw < DELAYED_SHARE + PRIORITIZED_SHARE:
        opts["priority"] = rng.randint(1, 5)
    if rng.random() < FAILING_SHARE:
        data["fail"] = rng.choice(FAILURES)
        if rng.random() < 0.5:
            opts["attempts"] = 2
            opts["backoff"] = {"type": "fixed", "delay": RETRY_BACKOFF_MS}
    return {"name": kind, "data": data, "opts": opts}


@dataclass(frozen=True, slots=True)
class AddTask:
    """Fill `indexes` queues with `jobs` jobs each, `concurrency` queues at a time."""

    url: str
    bull_prefix: str
    indexes: tuple[int, ...]
    jobs: int
    chunk: int
    concurrency: int


@dataclass(frozen=True, slots=True)
class ProcessTask:
    """Run `jobs` jobs of each of `indexes` queues through a bullmq worker, `concurrency` queues at a time."""

    url: str
    bull_prefix: str
    indexes: tuple[int, ...]
    jobs: int
    concurrency: int
    seed: int


def add_jobs(task: AddTask) -> dict[str, int]:
    """Process-pool entry point: add the jobs; returns how many of each kind went in."""
    return asyncio.run(_add_jobs(task))


def process_jobs(task: ProcessTask) -> dict[str, int]:
    """Process-pool entry point: run jobs through workers; returns completed / failed / retried."""
    return asyncio.run(_process_jobs(task))


async def _add_jobs(task: AddTask) -> dict[str, int]:
    gate = asyncio.Semaphore(task.concurrency)
    totals: Counter[str] = Counter()

    async def one(index: int) -> None:
        rng = random.Random(index)
        kind = KINDS[index % len(KINDS)]
        specs = [job_spec(rng, kind, n) for n in range(task.jobs)]
        for spec in specs:
            opts = spec["opts"]
            totals["delayed" if "delay" in opts else "prioritized" if "priority" in opts else "waiting"] += 1
        async with gate:
            queue = Queue(queue_name(index), {"connection": task.url, "prefix": task.bull_prefix})
            try:
                for start in range(0, len(specs), task.chunk):
                    await queue.addBulk(specs[start : start + task.chunk])
            finally:
                await queue.close()

    await asyncio.gather(*(one(i) for i in task.indexes))
    return dict(totals)


async def _process_jobs(task: ProcessTask) -> dict[str, int]:
    gate = asyncio.Semaphore(task.concurrency)
    totals: Counter[str] = Counter()

    async def one(index: int) -> None:
        async with gate:
            worker = open_worker(task.url, task.bull_prefix, index)
            try:
                totals.update(await run_jobs(worker, task.jobs, random.Random(task.seed + index)))
            finally:
                await worker.close()

    await asyncio.gather(*(one(i) for i in task.indexes))
    return dict(totals)


def open_worker(url: str, bull_prefix: str, index: int) -> Worker:
    """A bullmq worker on one queue that fetches jobs only when asked (no processor, no run loop)."""
    return Worker(queue_name(index), None, {"connection": url, "prefix": bull_prefix, "autorun": False})


async def run_jobs(worker: Worker, count: int, rng: random.Random) -> Counter[str]:
    """Take up to `count` jobs from the queue's head and finish each as its data says.

    Jobs are fetched with `moveToActive`, which never blocks: `getNextJob` on a queue that ran dry
    would wait for the next delayed job (hours here).
    """
    token = uuid.uuid4().hex
    tally: Counter[str] = Counter()
    for _ in range(count):
        job = await worker.moveToActive(token)
        if job is None:
            break
        spent = min(rng.lognormvariate(math.log(PROCESSING_MEDIAN_MS), 0.8), PROCESSING_CAP_MS)
        await asyncio.sleep(spent / 1000)
        reason = job.data.get("fail") if isinstance(job.data, dict) else None
        if reason:
            retry = job.attemptsMade + 1 < int(job.opts.get("attempts") or 0)
            await job.moveToFailed(RuntimeError(reason), token)
            tally["retried" if retry else "failed"] += 1
        else:
            await job.moveToCompleted("ok", token)
            tally["completed"] += 1
    return tally
