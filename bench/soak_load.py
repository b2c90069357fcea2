"""Load jobs of the soak test, run in load-generator processes (bench.client.serve) for the whole run.

`PollJob`: HTTP pollers of the routes the admin UI polls (`/v1/overview`, then `/v1/queues`), each at a
fixed interval on a keep-alive connection of its own, every answer parsed; each call is kept with the
wall-clock time it ended, so the report can leave the warm-up out. `QueueActivityJob`: the busy queues,
jobs added and finished every second with raw pipelined writes in BullMQ's layout (job hash, `wait`
list, `completed` / `failed` sets, the event stream), so the collector has real work every minute;
finished jobs beyond a keep count are removed, as `removeOnComplete: {count}` does, so Redis stays flat.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import aiohttp
import redis
from redis.typing import EncodableT

from workermon_core.redis_store import connect

from .client import CALL_TIMEOUT_S, Ready, _await_window
from .collector_workload import FAILURES
from .gateway_client import ROUTES
from .monitor_client import count_failure, get_json

# Events kept per queue stream, as BullMQ's default `streams.events.maxLen`.
EVENTS_MAX_LEN = 10_000
# A job waits this many ticks before it is finished, so every queue always has a few waiting.
WAIT_TICKS = 2
FAILED_SHARE = 0.05


@dataclass(slots=True)
class RouteCalls:
    """Calls of one route: (time.time() at the answer, latency ms) of each success, and the failures."""

    calls: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    timeouts: int = 0
    error_sample: str = ""
    items: int = 0
    response_bytes: int = 0


@dataclass(slots=True)
class PollResult:
    """What every poller saw, by route; CPU seconds of this process over the run."""

    routes: dict[str, RouteCalls]
    client_cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class PollJob:
    """`pollers` dashboards, each GETting every route in ROUTES once per `interval_s` until the window
    ends; their starts are spread evenly over one interval."""

    base_url: str  # http://host:port/api
    token: str
    pollers: int
    interval_s: float

    async def run(self, conn: Connection) -> PollResult:
        """Open the sessions, say Ready, poll until the window ends."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=CALL_TIMEOUT_S)
        result = PollResult(routes={rpc: RouteCalls() for rpc in ROUTES})
        connector = aiohttp.TCPConnector(limit=self.pollers)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
            meter = await _await_window(conn, Ready())
            offset = time.time() - time.perf_counter()
            cpu = time.process_time()

            async def poller(k: int) -> None:
                due = max(meter.start, time.perf_counter()) + k * self.interval_s / self.pollers
                while True:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    if meter.over():
                        return
                    for rpc, (route, items_key) in ROUTES.items():
                        url = self.base_url + route
                        await self._call(session, url, items_key, result.routes[rpc], offset)
                    due += self.interval_s

            await asyncio.gather(*(poller(k) for k in range(self.pollers)))
            result.client_cpu_s = time.process_time() - cpu
        return result

    @staticmethod
    async def _call(
        session: aiohttp.ClientSession, url: str, items_key: str, calls: RouteCalls, offset: float
    ) -> None:
        sent = time.perf_counter()
        try:
            calls.items, calls.response_bytes = await get_json(session, url, items_key)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            count_failure(calls, exc)
            return
        now = time.perf_counter()
        calls.calls.append((now + offset, (now - sent) * 1000.0))


# --- busy queues -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ActivityResult:
    """Jobs added and finished over the run, ticks written, and the ticks that failed."""

    added: int = 0
    completed: int = 0
    failed: int = 0
    ticks: int = 0
    errors: int = 0
    error_sample: str = ""
    client_cpu_s: float = 0.0


@dataclass(slots=True)
class _Queue:
    """One busy queue's ids: those waiting (oldest first) and those kept finished, with their set."""

    base: str
    kind: str  # the jobs' name, the queue's purpose
    waiting: deque[tuple[int, int]] = field(default_factory=deque)  # (id, tick it was added at)
    finished: deque[tuple[int, str]] = field(default_factory=deque)  # (id, "completed" | "failed")


@dataclass(frozen=True, slots=True)
class QueueActivityJob:
    """Every second, `jobs_per_s` new jobs on each of `queues` (fractions carried over), and the jobs
    added WAIT_TICKS seconds earlier finished; ids start above the populated ones at `first_id`."""

    redis_url: str
    bull_prefix: str
    queues: tuple[str, ...]
    first_id: int
    jobs_per_s: float
    keep_finished: int = 1000

    async def run(self, conn: Connection) -> ActivityResult:
        """Connect, say Ready, write a tick a second until the window ends."""
        client = connect(self.redis_url)
        result = ActivityResult()
        queues = [_Queue(f"{self.bull_prefix}:{name}:", name.rsplit("-", 1)[0]) for name in self.queues]
        rng = random.Random(7)
        try:
            await client.ping()
            meter = await _await_window(conn, Ready())
            await asyncio.sleep(max(0.0, meter.start - time.perf_counter()))
            cpu, began = time.process_time(), time.perf_counter()
            next_id, owed = self.first_id, 0.0
            while not meter.over():
                owed += self.jobs_per_s
                adding, owed = int(owed), owed - int(owed)
                async with client.pipeline(transaction=False) as pipe:
                    for queue in queues:
                        for _ in range(adding):
                            self._add(pipe, queue, next_id, result.ticks)
                            next_id += 1
                        self._finish_due(pipe, queue, result, rng)
                    try:
                        await pipe.execute()
                    except redis.RedisError as exc:
                        result.errors += 1
                        result.error_sample = result.error_sample or repr(exc)
                result.ticks += 1
                result.added += adding * len(queues)
                await asyncio.sleep(max(0.0, began + result.ticks - time.perf_counter()))
            result.client_cpu_s = time.process_time() - cpu
        finally:
            await client.aclose()
        return result

    def _add(self, pipe: redis.asyncio.client.Pipeline, queue: _Queue, job_id: int, tick: int) -> None:
        now = int(time.time() * 1000)
        key = str(job_id)
        kind = queue.kind
        pipe.hset(
            queue.base + key,
            mapping={
                "name": kind,
                "data": json.dumps({"account": job_id % 100_000, "n": job_id}),
                "opts": json.dumps({"attempts": 1}),
                "timestamp": now,
                "delay": 0,
                "priority": 0,
            },
        )
        pipe.lpush(queue.base + "wait", key)
        pipe.set(queue.base + "id", job_id)
        self._event(pipe, queue, {"event": "added", "jobId": key, "name": kind})
        self._event(pipe, queue, {"event": "waiting", "jobId": key})
        queue.waiting.append((job_id, tick))

    def _finish_due(
        self, pipe: redis.asyncio.client.Pipeline, queue: _Queue, result: ActivityResult, rng: random.Random
    ) -> None:
        """Finish the jobs that have waited WAIT_TICKS ticks; drop the oldest finished beyond the keep."""
        while queue.waiting and queue.waiting[0][1] <= result.ticks - WAIT_TICKS:
            job_id, _ = queue.waiting.popleft()
            key, now = str(job_id), int(time.time() * 1000)
            state = "failed" if rng.random() < FAILED_SHARE else "completed"
            fields: dict[EncodableT, EncodableT] = {
                "processedOn": now - rng.randrange(5, 200),
                "finishedOn": now,
            }
            fields["atm"] = fields["ats"] = 1
            pipe.lrem(queue.base + "wait", 1, key)
            self._event(pipe, queue, {"event": "active", "jobId": key, "prev": "waiting"})
            if state == "completed":
                fields["returnvalue"] = json.dumps({"ok": True})
                self._event(
                    pipe, queue, {"event": "completed", "jobId": key, "returnvalue": "{}", "prev": "active"}
                )
                result.completed += 1
            else:
                reason = rng.choice(FAILURES)
                fields["failedReason"] = reason
                self._event(
                    pipe, queue, {"event": "failed", "jobId": key, "failedReason": reason, "prev": "active"}
                )
                self._event(pipe, queue, {"event": "retries-exhausted", "jobId": key, "attemptsMade": 1})
                result.failed += 1
            pipe.hset(queue.base + key, mapping=fields)
            pipe.zadd(queue.base + state, {key: now})
            queue.finished.append((job_id, state))
        while len(queue.finished) > self.keep_finished:
            job_id, state = queue.finished.popleft()
            pipe.zrem(queue.base + state, str(job_id))
            pipe.delete(queue.base + str(job_id))

    @staticmethod
    def _event(pipe: redis.asyncio.client.Pipeline, queue: _Queue, fields: dict[str, str | int]) -> None:
        pipe.xadd(queue.base + "events", fields, maxlen=EVENTS_MAX_LEN, approximate=True)  # type: ignore[arg-type]
