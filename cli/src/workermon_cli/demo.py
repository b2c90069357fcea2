"""The demo workload of `workermon up --demo`: real BullMQ queues, producers and SDK-instrumented workers.

emails   steady and fast, a few failures retried with backoff
webhooks a quarter of the attempts fail, a fifth of the jobs are delayed, one in twelve can never succeed
reports  slow jobs (2-8 s) that honour the abort signal, so cancelling one is cooperative

When Node.js and the built Node SDK (sdk/node: `make run` builds it) are there, one Node worker joins the
reports queue: the NestJS-style example of examples/node-worker, as a child process stopped with the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from bullmq import AbortSignal, Job, Queue

from workermon_core.redis_store import bullmq_connection
from workermon_core.server import Outage
from workermon_queues.settings import QueueSettings
from workermon_sdk.bullmq import InstrumentedWorker

from .runtime import Suite

log = structlog.get_logger("workermon.demo")
QUEUES = ("emails", "webhooks", "reports")
NODE_SDK = Path(__file__).resolve().parents[3] / "sdk" / "node"
"""The Node SDK in the source tree (absent from an installed wheel: the demo then runs no Node worker)."""
NODE_WORKER_ID = "demo-reports-node-1"
NODE_TOKEN_TTL = 30 * 24 * 3600.0
"""The Node worker's token is handed over once, in its environment, so it must outlive any demo run."""
NODE_STOP_SECONDS = 10.0


class DemoFailure(Exception):
    """A failure the demo produces on purpose."""


async def _send_email(job: Job, token: str) -> dict[str, Any]:
    await asyncio.sleep(random.uniform(0.05, 0.3))
    if random.random() < 0.03:
        raise DemoFailure("SMTP 421: service not available, try again later")
    return {"messageId": f"<{job.id}@demo.workermon>"}


async def _call_webhook(job: Job, token: str) -> dict[str, Any]:
    await asyncio.sleep(random.uniform(0.1, 0.6))
    if str(job.data.get("url", "")).endswith("/gone"):
        # A receiver that will never come back: every attempt fails the same way.
        raise DemoFailure("HTTP 410 Gone: the webhook endpoint was removed")
    roll = random.random()
    if roll < 0.12:
        raise DemoFailure("ETIMEDOUT: connect timed out after 5000 ms")
    if roll < 0.2:
        raise DemoFailure("HTTP 429 Too Many Requests (rate limit)")
    if roll < 0.25:
        raise DemoFailure("HTTP 401 Unauthorized: signature mismatch")
    return {"status": 200}


async def _build_report(job: Job, token: str, signal: AbortSignal) -> dict[str, Any]:
    pages = random.randint(4, 16)
    for page in range(pages):
        if signal.aborted:
            raise DemoFailure("report cancelled")
        await asyncio.sleep(0.5)
        await job.updateProgress(int((page + 1) * 100 / pages))
    return {"pages": pages}


@dataclass
class Demo:
    """Running demo: producers and workers; `stop()` ends them."""

    queues: list[Queue] = field(default_factory=list)
    workers: list[InstrumentedWorker] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    node_worker: asyncio.subprocess.Process | None = None

    async def stop(self) -> None:
        """Stop producing, close workers (saying goodbye), close queues."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.gather(
            *(w.close(force=True, reason="demo stopped") for w in self.workers),
            _stop_process(self.node_worker),
            return_exceptions=True,
        )
        await asyncio.gather(*(q.close() for q in self.queues), return_exceptions=True)


async def _stop_process(process: asyncio.subprocess.Process | None) -> None:
    """SIGTERM (the worker finishes its jobs and says goodbye), then SIGKILL if it takes too long."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), NODE_STOP_SECONDS)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def node_worker_command() -> list[str] | None:
    """`node <example worker>` when Node.js and the built Node SDK are there, else None (why is logged)."""
    node = shutil.which("node")
    example = NODE_SDK / "dist-example" / "main.js"
    if node is None:
        log.info("demo_node_worker_skipped", reason="node is not installed")
        return None
    if not (example.exists() and (NODE_SDK / "dist" / "src" / "index.js").exists()):
        log.info(
            "demo_node_worker_skipped", reason=f"the Node SDK is not built: npm --prefix {NODE_SDK} run build"
        )
        return None
    return [node, str(example)]


async def start_node_worker(
    command: list[str], *, target: str, token: str, redis_url: str, prefix: str, queue: str = "reports"
) -> asyncio.subprocess.Process:
    """The example Node worker (examples/node-worker) on `queue`, reporting to `target` as NODE_WORKER_ID."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKERMON_") and k != "REDIS_URL"}
    env.update(
        WORKERMON_TARGET=target,
        WORKERMON_TOKEN=token,
        WORKER_ID=NODE_WORKER_ID,
        QUEUE=queue,
        QUEUE_REDIS_URL=redis_url,
        BULL_PREFIX=prefix,
        CONCURRENCY="2",
    )
    return await asyncio.create_subprocess_exec(
        *command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL
    )


async def _produce(
    queue: Queue,
    every: tuple[float, float],
    make: Callable[[int], tuple[str, dict[str, Any], dict[str, Any]]],
) -> None:
    n = 0
    outage = Outage("demo_produce", queue=queue.name)
    while True:
        n += 1
        name, data, opts = make(n)
        try:
            await queue.add(name, data, opts)
            outage.ok()
        except Exception as exc:
            outage.failed(exc)
        await outage.pause(random.uniform(*every))


def _email(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    return (
        "welcome",
        {"to": f"user{n}@example.com"},
        {
            "attempts": 3,
            "backoff": {"type": "exponential", "delay": 1000},
            "removeOnComplete": 1000,
            "removeOnFail": 5000,
        },
    )


def _webhook(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    opts: dict[str, Any] = {
        "attempts": 3,
        "backoff": {"type": "fixed", "delay": 2000},
        "removeOnComplete": 1000,
        "removeOnFail": 5000,
    }
    if random.random() < 0.2:
        opts["delay"] = random.randint(5_000, 30_000)
    # One receiver in twelve is gone for good: every attempt fails, so about 8 % of the queue's jobs fail
    # finally - above the 5 % failure-rate rule, so the demo raises a real HIGH_FAILURE_RATE incident.
    target = "gone" if n % 12 == 0 else str(n % 7)
    return "deliver", {"url": f"https://hooks.example.com/{target}", "event": "order.paid"}, opts


def _report(n: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    return "monthly", {"account": n % 11}, {"attempts": 1, "removeOnComplete": 500, "removeOnFail": 500}


async def start_demo(suite: Suite) -> Demo:
    """Create the demo queues, start producing, and start four instrumented workers."""
    queues = suite.deps.settings(QueueSettings)
    connection = queues.queue_redis_url or suite.deps.suite_redis_url
    prefix = queues.queue_prefix
    demo = Demo()
    tokens: dict[str, tuple[str, float]] = {}

    def token_for(worker_id: str) -> Callable[[], str]:
        """Each demo worker has its own token, bound to its id; re-minted shortly before expiry (the
        workers ask on every call)."""

        def token() -> str:
            cached = tokens.get(worker_id)
            if cached is None or cached[1] < time.time() + 300:
                minted = suite.authority.mint(worker_id, "worker", 3600, worker=worker_id)
                tokens[worker_id] = (minted, time.time() + 3600)
            return tokens[worker_id][0]

        return token

    for name in QUEUES:
        demo.queues.append(Queue(name, {"connection": bullmq_connection(connection), "prefix": prefix}))
    emails, webhooks, reports = demo.queues
    producers: list[Awaitable[None]] = [
        _produce(emails, (0.1, 0.4), _email),
        _produce(webhooks, (0.3, 0.8), _webhook),
        _produce(reports, (2.0, 4.0), _report),
    ]
    demo.tasks = [asyncio.create_task(p) for p in producers]  # type: ignore[arg-type]

    specs: list[tuple[str, str, Any, int, dict[str, str]]] = [
        ("demo-emails-1", "emails", _send_email, 4, {"team": "growth"}),
        ("demo-emails-2", "emails", _send_email, 4, {"team": "growth"}),
        ("demo-webhooks-1", "webhooks", _call_webhook, 8, {"team": "platform"}),
        ("demo-reports-1", "reports", _build_report, 2, {"team": "analytics"}),
    ]
    for worker_id, queue, processor, concurrency, labels in specs:
        worker = InstrumentedWorker(
            queue,
            processor,
            {"connection": bullmq_connection(connection), "prefix": prefix, "concurrency": concurrency},
            target=suite.grpc_target,
            token=token_for(worker_id),
            worker_id=worker_id,
            labels=labels,
            version="demo-1.0",
            gauges=(lambda: {"open_browsers": float(random.randint(0, 3))}) if queue == "reports" else None,
        )
        await worker.start()
        demo.workers.append(worker)
    workers = [s[0] for s in specs]
    command = node_worker_command()
    if command is not None and not connection.startswith(("redis://", "rediss://")):
        log.info("demo_node_worker_skipped", reason="the example Node worker takes a redis:// URL only")
        command = None
    if command is not None:
        token = suite.authority.mint(NODE_WORKER_ID, "worker", NODE_TOKEN_TTL, worker=NODE_WORKER_ID)
        demo.node_worker = await start_node_worker(
            command, target=suite.grpc_target, token=token, redis_url=connection, prefix=prefix
        )
        workers.append(NODE_WORKER_ID)
    log.info("demo_started", queues=list(QUEUES), workers=workers)
    return demo
