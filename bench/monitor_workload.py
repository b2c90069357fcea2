"""The MonitorService benchmark's BullMQ queues: made by Node BullMQ, or written with raw pipelined
Redis commands.

The board's queues are made by Node BullMQ itself (bench/node/workload.mjs: Queue.addBulk, Workers
that complete or fail the jobs, the waiting share added once they stopped), so bull-board and the
service read keys no code of ours wrote. The 1,000,000-job queue of ListJobs, which bull-board does not
read in the benchmark, and the gateway benchmark's queues are written directly in BullMQ's layout (as
BullMQ 5/6 leaves them), which takes seconds rather than a minute:

* `<prefix>:<queue>:<id>` job hash: name, data, opts, timestamp, delay, priority; once started
  processedOn, ats, atm (attempts made; BullMQ before v5 called it attemptsMade); once finished
  finishedOn and returnvalue, or failedReason and stacktrace;
* `wait` list (LPUSH: newest first), `delayed` zset (score = (timestamp + delay) * 0x1000 + id's low 12
  bits), `completed` / `failed` zsets (score = finishedOn);
* `meta` hash (opts.maxLenEvents, version) and `id` counter.

The counts are checked afterwards with `BullMQBackend.states`.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.typing import EncodableT

from workermon_core.redis_store import connect
from workermon_queues.bullmq import BullMQBackend

from . import nodejs
from .collector_workload import FAILURES, KINDS, queue_name
from .procs import BenchError

STATES = ("completed", "failed", "waiting", "delayed")
# Every state `check_states` compares: those the workload makes, and those it must leave empty.
CHECKED_STATES = (*STATES, "active", "prioritized")
RAW = "raw pipelined writes in BullMQ's layout"
NODE_SCRIPT = "workload.mjs"
NODE_TIMEOUT_S = 900.0
# Shares of each queue's jobs; the rest completed.
FAILED_SHARE = 0.05
WAITING_SHARE = 0.06
DELAYED_SHARE = 0.04
BULLMQ_VERSION = "bullmq:6.7.0"
DELAYED_SCORE_SHIFT = 0x1000
# Jobs per pipeline round trip: large enough that round trips do not dominate, small enough that one
# reply does not hold megabytes.
BATCH = 5000
# What a job summary shows (the fields MonitorService's ListJobs reads); the raw baseline reads them too.
SUMMARY_FIELDS = (
    "name",
    "timestamp",
    "processedOn",
    "finishedOn",
    "atm",
    "attemptsMade",
    "failedReason",
    "opts",
    "delay",
    "priority",
)


def queue_names(count: int) -> list[str]:
    """The benchmark's queue names."""
    return [queue_name(i) for i in range(count)]


def state_counts(jobs: int) -> dict[str, int]:
    """How many of a queue's `jobs` end up in each state."""
    failed = round(jobs * FAILED_SHARE)
    waiting = round(jobs * WAITING_SHARE)
    delayed = round(jobs * DELAYED_SHARE)
    return {
        "completed": jobs - failed - waiting - delayed,
        "failed": failed,
        "waiting": waiting,
        "delayed": delayed,
    }


def _job_state(number: int, counts: dict[str, int]) -> str:
    """States in id order: the oldest jobs are finished, the newest wait or are delayed."""
    bound = 0
    for state in STATES:
        bound += counts[state]
        if number <= bound:
            return state
    raise ValueError(number)


def _write_queue(pipe: redis.client.Pipeline, prefix: str, name: str, jobs: int, now_ms: int) -> Counter[str]:
    rng = random.Random(name)
    counts = state_counts(jobs)
    base = f"{prefix}:{name}:"
    kind = name.rsplit("-", 1)[0]
    by_state: dict[str, dict[str, float]] = {state: {} for state in STATES}
    waiting: list[str] = []
    for number in range(1, jobs + 1):
        job_id = str(number)
        state = _job_state(number, counts)
        # One job a minute, the newest just now: the finished ones span the last hours.
        created = now_ms - (jobs - number) * 60_000 - rng.randrange(60_000)
        fields: dict[EncodableT, EncodableT] = {
            "name": kind,
            "data": json.dumps({"account": rng.randrange(100_000), "n": number}),
            "opts": json.dumps({"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}}),
            "timestamp": created,
            "delay": 0,
            "priority": 0,
        }
        if state in ("completed", "failed"):
            processed = created + rng.randrange(5, 2_000)
            finished = processed + int(rng.lognormvariate(3.0, 1.0)) + 1
            fields.update(processedOn=processed, finishedOn=finished, ats=1, atm=1)
            if state == "completed":
                fields["returnvalue"] = json.dumps({"ok": True})
            else:
                fields["atm"] = fields["ats"] = 3
                reason = rng.choice(FAILURES)
                fields["failedReason"] = reason
                fields["stacktrace"] = json.dumps([f"Error: {reason}\n    at process (job.js:1:1)"])
            by_state[state][job_id] = finished
        elif state == "delayed":
            delay = rng.randint(1, 6) * 3_600_000
            fields["delay"] = delay
            by_state[state][job_id] = (created + delay) * DELAYED_SCORE_SHIFT + (number & 0xFFF)
        else:
            waiting.append(job_id)
        pipe.hset(base + job_id, mapping=fields)
    for state in ("completed", "failed", "delayed"):
        if by_state[state]:
            pipe.zadd(base + state, by_state[state])
    if waiting:
        pipe.lpush(base + "wait", *waiting)
    pipe.hset(base + "meta", mapping={"opts.maxLenEvents": 10_000, "version": BULLMQ_VERSION})
    pipe.set(base + "id", jobs)
    return Counter(counts)


@dataclass(frozen=True, slots=True)
class Populated:
    """What the workload wrote."""

    queues: int
    jobs: int
    counts: dict[str, int]
    seconds: float
    made_by: str = RAW
    steps_s: dict[str, float] = field(default_factory=dict)


def populate(client: redis.Redis, prefix: str, names: Sequence[str], jobs: int) -> Populated:
    """Write every queue, a few queues per pipeline round trip."""
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    total: Counter[str] = Counter()
    per_trip = max(1, BATCH // max(jobs, 1))
    for first in range(0, len(names), per_trip):
        pipe = client.pipeline(transaction=False)
        for name in names[first : first + per_trip]:
            total += _write_queue(pipe, prefix, name, jobs, now_ms)
        pipe.execute()
    return Populated(len(names), len(names) * jobs, dict(total), time.perf_counter() - started)


def populate_node(
    redis_url: str, prefix: str, names: Sequence[str], jobs: int
) -> tuple[Populated, dict[str, dict[str, int]]]:
    """Every queue made by Node BullMQ (bench/node/workload.mjs); also the counts Node read back from
    each queue. Raises nodejs.NodeUnavailable when Node cannot run, BenchError when the script fails."""
    planned = state_counts(jobs)
    args = [redis_url, prefix, ",".join(names), *(str(planned[state]) for state in STATES)]
    started = time.perf_counter()
    done = subprocess.run(
        [*nodejs.command(NODE_SCRIPT), *args],
        cwd=nodejs.NODE_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=NODE_TIMEOUT_S,
    )
    if done.returncode:
        raise BenchError(f"{NODE_SCRIPT} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    made: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    per_queue: dict[str, dict[str, int]] = made["counts"]
    total: Counter[str] = Counter()
    for counts in per_queue.values():
        total.update({state: counts[state] for state in STATES})
    populated = Populated(
        queues=len(names),
        jobs=len(names) * jobs,
        counts=dict(total),
        seconds=time.perf_counter() - started,
        made_by=f"Node BullMQ {nodejs.package_version('bullmq')} (Queue.addBulk, Workers)",
        steps_s={"add": made["add_s"], "work": made["work_s"]},
    )
    return populated, per_queue


def full_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """`counts` with every checked state, 0 where absent."""
    return {state: int(counts.get(state, 0)) for state in CHECKED_STATES}


def populate_completed(client: redis.Redis, prefix: str, name: str, jobs: int) -> float:
    """One queue of `jobs` completed jobs (minimal hashes, finishedOn scores); returns seconds taken."""
    started = time.perf_counter()
    now_ms = int(time.time() * 1000)
    base = f"{prefix}:{name}:"
    kind = KINDS[0]
    for first in range(1, jobs + 1, BATCH):
        pipe = client.pipeline(transaction=False)
        scores: dict[str, float] = {}
        for number in range(first, min(first + BATCH, jobs + 1)):
            # Ten a second, the newest just now.
            finished = now_ms - (jobs - number) * 100
            job_id = str(number)
            pipe.hset(
                base + job_id,
                mapping={
                    "name": kind,
                    "data": "{}",
                    "opts": "{}",
                    "timestamp": finished - 50,
                    "processedOn": finished - 20,
                    "finishedOn": finished,
                    "atm": 1,
                },
            )
            scores[job_id] = finished
        pipe.zadd(base + "completed", scores)
        pipe.execute()
    client.hset(base + "meta", mapping={"opts.maxLenEvents": 10_000, "version": BULLMQ_VERSION})
    client.set(base + "id", jobs)
    return time.perf_counter() - started


def check_states(redis_url: str, prefix: str, expected: dict[str, dict[str, int]]) -> list[str]:
    """What `BullMQBackend.states` reads differently from what was written (empty when all agree)."""

    async def read() -> dict[str, dict[str, int]]:
        client = connect(redis_url)
        try:
            backend = BullMQBackend(client, prefix=prefix, queues=list(expected), discover=False)
            states = await backend.states(list(expected), int(time.time() * 1000))
        finally:
            await client.aclose()
        return {name: {state: getattr(s, state) for state in CHECKED_STATES} for name, s in states.items()}

    found = asyncio.run(read())
    problems = []
    for name, want in expected.items():
        got = found.get(name)
        full = full_counts(want)
        if got != full:
            problems.append(f"{name}: wrote {full}, BullMQBackend.states reads {got}")
    return problems


def raw_page(client: redis.Redis, prefix: str, name: str, size: int) -> int:
    """The Redis work of a first page of completed jobs, without the service: ZREVRANGE, then one
    pipeline of HMGETs. Returns the jobs read."""
    base = f"{prefix}:{name}:"
    ids: list[bytes] = client.zrevrange(base + "completed", 0, size - 1)  # type: ignore[assignment]
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(base + job_id.decode(), SUMMARY_FIELDS)
    return len(pipe.execute())
