"""Collector benchmark: one snapshot cycle over 1,000 real BullMQ queues, and a day of history queried back.

    uv run python -m bench.collector            # full run: 1,000 queues x 1,000 jobs, a few minutes
    uv run python -m bench.collector --quick    # smoke run: 100 queues x 100 jobs, under 30 seconds

Queues are filled with python bullmq (`Queue.addBulk`), and a tenth of them get workers: bullmq
`Worker`s that complete, fail and retry jobs, so streams, finished-job sets and job hashes are
BullMQ's own. Redis is REDIS_URL when set, else an embedded one; the run uses a suite prefix and a
BullMQ prefix of its own and deletes its keys afterwards. Snapshot rows go to a SQLite file and,
when PostgreSQL answers (DATABASE_URL, else the local postgresql://postgres@127.0.0.1:5432/test), to a
fresh schema there, dropped afterwards.

Measured in the same run: full collection cycles (`Collector.collect`) split into phases, each phase
alone, the per-queue bullmq baseline the first plan proposed, a raw pipeline of the count commands,
and `QuerySnapshots` over 24 hours of minute rows and over 7 and 30 days of hourly rollups (the store
alone and through gRPC). Targets are
printed as PASS / MISS for information; the exit status never depends on time. Results also go to
build/bench/collector.json.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import multiprocessing
import os
import random
import secrets
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import redis
from bullmq import Queue, Worker
from google.protobuf import timestamp_pb2
from redis.utils import HIREDIS_AVAILABLE

from workermon.collector.v1 import collector_service_pb2 as pb
from workermon.collector.v1 import collector_service_pb2_grpc as pb_grpc
from workermon_cli.runtime import open_dependencies, start_suite
from workermon_collector.collector import Collector
from workermon_collector.follower import MINUTE_MS, EventFollower, minute_of
from workermon_collector.models import rollups, snapshots
from workermon_collector.rows import SnapshotRow
from workermon_collector.store import SnapshotStore
from workermon_collector.store.parts import HOUR, MINUTE, floor_time
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.logging import configure_logging
from workermon_core.protos import from_ms
from workermon_core.redis_store import EmbeddedRedis, connect
from workermon_core.settings import load_settings
from workermon_queues.backend import QueueState
from workermon_queues.bullmq import BullMQBackend
from workermon_queues.classify import FailureClassifier

from . import collector_report as report
from . import record, text
from .collector_db import (
    Database,
    history_rows,
    open_postgres,
    open_sqlite,
    postgres_answers,
    postgres_url,
    repeat_rollups,
    safe_url,
    summary_pool,
)
from .collector_timing import (
    PHASES,
    READS,
    GcWatch,
    PhaseClock,
    TimedBackend,
    TimedFollower,
    TimedStore,
    latency_stats,
    machine_sample,
    median,
    ratio,
)
from .collector_workload import (
    AddTask,
    ProcessTask,
    add_jobs,
    busy_indexes,
    open_worker,
    process_jobs,
    queue_name,
    run_jobs,
)

RESULTS = record.results_path("collector")
# The seven states the collector counts, as bullmq's getJobCounts names them.
COUNT_TYPES = ("waiting", "active", "delayed", "prioritized", "waiting-children", "completed", "failed")
T = TypeVar("T")
# The long trend ranges, read from hourly rollups at a 1-hour step: what QuerySnapshots picks for them
# when no step is given (the fewest minutes giving at most 1,500 points, rounded up to whole hours).
TRENDS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes of one run."""

    mode: str
    queues: int
    jobs_per_queue: int
    # Queues that also have workers: their jobs complete, fail and retry (the others only wait).
    busy_queues: int
    processed_per_busy: int
    # Jobs each busy queue's worker finishes right before every measured cycle (fresh stream entries).
    burst_per_busy: int
    cycles: int
    # Repetitions of each phase measured alone.
    reps: int
    history_queues: int
    history_minutes: int
    # Days of hourly rollups behind the 7- and 30-day trend queries (the last day rolled from the minutes).
    history_days: int
    query_calls: int
    grpc_calls: int
    procs: int
    add_chunk: int
    add_concurrency: int
    process_concurrency: int
    # Start the cycles once the collected minute is over (up to a minute's wait; not in quick mode).
    complete_minute: bool


FULL = Plan(
    mode="full",
    queues=1000,
    jobs_per_queue=1000,
    busy_queues=100,
    processed_per_busy=100,
    burst_per_busy=10,
    cycles=5,
    reps=10,
    history_queues=100,
    history_minutes=1440,
    history_days=30,
    query_calls=200,
    grpc_calls=200,
    procs=max(1, os.cpu_count() or 1),
    add_chunk=250,
    add_concurrency=8,
    process_concurrency=25,
    complete_minute=True,
)
QUICK = replace(
    FULL,
    mode="quick",
    queues=100,
    jobs_per_queue=100,
    busy_queues=10,
    processed_per_busy=20,
    burst_per_busy=5,
    cycles=2,
    reps=3,
    history_queues=1,
    query_calls=20,
    grpc_calls=20,
    complete_minute=False,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _timed(work: Awaitable[T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = await work
    return value, time.perf_counter() - start


def _ready() -> int:
    """Process-pool warm-up: the worker process exists and has imported the workload."""
    return os.getpid()


class Bench:
    """One run: Redis, the databases, the BullMQ workload, and the phases measured against them."""

    def __init__(self, plan: Plan, stack: AsyncExitStack, tmp: Path, profile: Path | None = None) -> None:
        self.plan = plan
        self.profile = profile
        self.stack = stack
        self.tmp = tmp
        self.prefix = "wmbench-" + uuid.uuid4().hex[:10]
        self.bull_prefix = "bench" + uuid.uuid4().hex[:10]
        self.indexes = list(range(plan.queues))
        self.names = sorted(queue_name(i) for i in self.indexes)
        self.busy = busy_indexes(plan.queues, plan.busy_queues)
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.cleanup: dict[str, Any] = {}
        self.databases: list[Database] = []
        self.postgres: Database | None = None
        self.workers: list[Worker] = []
        self.minute_ms = 0
        self.last_rows: dict[str, list[SnapshotRow]] = {}
        self.redis_url = ""
        self.redis_kind = ""
        self.history_now = datetime.now(UTC)
        self.history_names: list[str] = []

    # --- setup and teardown -------------------------------------------------------------------------

    async def open(self, use_postgres: bool) -> None:
        self.redis_url, self.redis_kind = self._start_redis()
        self.admin = redis.Redis.from_url(self.redis_url)
        self.stack.callback(self.admin.close)
        self.stack.callback(self._delete_keys)
        self.redis = connect(self.redis_url)
        self.stack.push_async_callback(self.redis.aclose)
        self.backend = BullMQBackend(self.redis, prefix=self.bull_prefix, queues=self.names, discover=False)
        self.follower = EventFollower(self.backend, self.redis, self.prefix, FailureClassifier())
        self.databases.append(await open_sqlite(self.tmp, self.stack))
        if not use_postgres:
            self.notes.append("PostgreSQL skipped (--no-postgres)")
            return
        url = postgres_url()
        answers, detail = postgres_answers(url)
        if not answers:
            self.notes.append(f"PostgreSQL at {safe_url(url)} does not answer ({detail}): skipped")
            return
        self.postgres = await open_postgres(url, detail, self.stack)
        self.databases.append(self.postgres)

    def _start_redis(self) -> tuple[str, str]:
        configured = os.environ.get("REDIS_URL")
        if configured:
            return configured, "REDIS_URL"
        embedded = EmbeddedRedis(self.tmp)
        url = embedded.start()
        self.stack.callback(embedded.stop)
        # A throw-away instance: no RDB snapshot (a fork of a ~1 GB process) during a measurement.
        with redis.Redis.from_url(url) as admin:
            admin.config_set("save", "")
        return url, "embedded"

    def _delete_keys(self) -> None:
        """SCAN + UNLINK, in batches, every key of the run: BullMQ's and the collector's."""
        started = time.perf_counter()
        deleted = 0
        for pattern in (self.bull_prefix + ":*", "{" + self.prefix + "}*"):
            batch: list[bytes] = []
            for key in self.admin.scan_iter(match=pattern, count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    deleted += int(self.admin.unlink(*batch))
                    batch.clear()
            if batch:
                deleted += int(self.admin.unlink(*batch))
        self.cleanup.update({"keys_deleted": deleted, "seconds": time.perf_counter() - started})

    async def _close_workers(self) -> None:
        for worker in self.workers:
            await worker.close()

    async def topology(self) -> dict[str, Any]:
        info: dict[str, Any] = self.admin.info("server")
        return {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "redis": self.redis_kind,
            "redis_version": info.get("redis_version", "?"),
            "redis_parser": "hiredis" if HIREDIS_AVAILABLE else "pure Python (no hiredis)",
            "prefix": self.prefix,
            "bull_prefix": self.bull_prefix,
            "databases": [
                {"kind": db.kind, "label": db.label, "version": db.version, "url": safe_url(db.url)}
                for db in self.databases
            ],
        }

    # --- workload -----------------------------------------------------------------------------------

    async def populate(self) -> dict[str, Any]:
        """Fill every queue through bullmq, then let workers run a share of the busy queues' jobs.

        Between the two, the event follower sees every stream for the first time (its cursors start at
        each stream's end), so what the workers do is counted, as with a collector already running.
        """
        plan = self.plan
        loop = asyncio.get_running_loop()
        procs = max(1, min(plan.procs, plan.queues))
        with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, _ready) for _ in range(procs)))
            started = time.perf_counter()
            adds = [
                AddTask(
                    self.redis_url,
                    self.bull_prefix,
                    tuple(self.indexes[k::procs]),
                    plan.jobs_per_queue,
                    plan.add_chunk,
                    plan.add_concurrency,
                )
                for k in range(procs)
            ]
            added: Counter[str] = Counter()
            for part in await asyncio.gather(*(loop.run_in_executor(pool, add_jobs, t) for t in adds)):
                added.update(part)
            add_s = time.perf_counter() - started
            await self.follower.follow_many(self.names, _now_ms())
            started = time.perf_counter()
            runs = [
                ProcessTask(
                    self.redis_url,
                    self.bull_prefix,
                    tuple(self.busy[k::procs]),
                    plan.processed_per_busy,
                    plan.process_concurrency,
                    seed=1000 * k,
                )
                for k in range(procs)
                if self.busy[k::procs]
            ]
            processed: Counter[str] = Counter()
            for part in await asyncio.gather(*(loop.run_in_executor(pool, process_jobs, t) for t in runs)):
                processed.update(part)
            process_s = time.perf_counter() - started
        # What the collector's background follower does every 2 s: catch up before the first cycle.
        caught, catch_s = await _timed(self.follower.follow_many(self.names, _now_ms()))
        self.minute_ms, finished_in_minute = self._busiest_minute()
        self.workers = [open_worker(self.redis_url, self.bull_prefix, i) for i in self.busy]
        self.stack.push_async_callback(self._close_workers)
        jobs = plan.queues * plan.jobs_per_queue
        memory: dict[str, Any] = self.admin.info("memory")
        return {
            "queues": plan.queues,
            "jobs": jobs,
            "added": dict(added),
            "add_s": add_s,
            "add_jobs_per_s": ratio(jobs, add_s),
            "processes": procs,
            "busy_queues": len(self.busy),
            "processed": dict(processed),
            "process_s": process_s,
            "seconds": add_s + process_s,
            "catch_up_events": sum(caught.values()),
            "catch_up_s": catch_s,
            "minute": from_ms(self.minute_ms).isoformat(),
            "finished_in_minute": finished_in_minute,
            "redis_keys": int(self.admin.dbsize()) if self.redis_kind == "embedded" else None,
            "redis_used_memory_mb": int(memory.get("used_memory", 0)) / 2**20,
        }

    def _busiest_minute(self) -> tuple[int, int]:
        """The minute in which the workers finished the most jobs (the heaviest minute to collect)."""
        per_minute: Counter[int] = Counter()
        with self.admin.pipeline(transaction=False) as pipe:
            for index in self.busy:
                for state in ("completed", "failed"):
                    pipe.zrange(f"{self.bull_prefix}:{queue_name(index)}:{state}", 0, -1, withscores=True)
            for pairs in pipe.execute():
                per_minute.update(minute_of(int(score)) for _, score in pairs)
        if not per_minute:
            self.warnings.append("no job finished during population")
            return minute_of(_now_ms()), 0
        minute, count = per_minute.most_common(1)[0]
        return minute, count

    async def burst(self) -> dict[str, int]:
        """Every busy queue's worker finishes a few jobs: the stream entries a cycle's follow reads."""
        rng = random.Random(_now_ms())
        tallies = await asyncio.gather(
            *(run_jobs(w, self.plan.burst_per_busy, random.Random(rng.random())) for w in self.workers)
        )
        total: Counter[str] = Counter()
        for tally in tallies:
            total.update(tally)
        short = sum(total.values()) < self.plan.burst_per_busy * len(self.workers)
        if short and not any(w.startswith("busy queues ran out") for w in self.warnings):
            self.warnings.append(f"busy queues ran out of waiting jobs (a burst finished {dict(total)})")
        return dict(total)

    # --- collection cycles --------------------------------------------------------------------------

    async def cycles(self, db: Database) -> dict[str, Any]:
        """A cold first cycle, then `cycles` measured ones, all collecting the busiest minute.

        Before each cycle the busy queues' workers finish a few jobs (fresh events to follow) and the
        rows an earlier cycle wrote for that minute are deleted (not timed), so every cycle really
        inserts one row per queue.
        """
        clock = PhaseClock()
        backend = TimedBackend(
            BullMQBackend(self.redis, prefix=self.bull_prefix, queues=self.names, discover=False), clock
        )
        follower = TimedFollower(backend.inner, self.redis, self.prefix, FailureClassifier(), clock)
        collector = Collector(backend, follower, TimedStore(db.engine, clock), self.redis, self.prefix)
        minute = from_ms(self.minute_ms)
        runs: list[dict[str, Any]] = []
        for _ in range(self.plan.cycles + 1):
            fresh = await self.burst()
            await db.delete_minute(minute, self.names)
            clock.reset()
            cpu_before, redis_before, machine = time.process_time(), self._redis_cpu(), machine_sample()
            with GcWatch() as collections:
                started = time.perf_counter()
                result = await collector.collect(self.names, minute_ms=self.minute_ms)
                wall = time.perf_counter() - started
            busy = machine_sample().busy_pct_since(machine)
            cpu_s, redis_s = time.process_time() - cpu_before, self._redis_cpu() - redis_before
            written = sum(result.written)
            if result.errors or result.database_error or written != len(self.names):
                self.warnings.append(
                    f"{db.label} cycle: {written} of {len(self.names)} rows written, "
                    f"{len(result.errors)} queue errors {result.errors[:2]}, "
                    f"database: {result.database_error}"
                )
            self.last_rows[db.kind] = result.rows
            runs.append(
                {
                    "wall_ms": 1000.0 * wall,
                    "collector_ms": result.duration_ms,
                    "phases_ms": clock.breakdown_ms(wall),
                    "reads_ms": clock.reads_ms(),
                    "events": clock.events,
                    "fresh_jobs": sum(fresh.values()),
                    "finished_jobs": clock.finished_jobs,
                    "rows_written": written,
                    "queue_errors": len(result.errors),
                    "database_error": result.database_error,
                    "process_cpu_ms": 1000.0 * cpu_s,
                    "redis_cpu_ms": 1000.0 * redis_s,
                    "machine_busy_pct": busy,
                    **collections.to_dict(),
                }
            )
        if self.profile is not None:
            await self._profile_cycle(db, collector)
        measured = runs[1:]
        walls = [r["wall_ms"] for r in measured]
        return {
            "label": db.label,
            "queues": len(self.names),
            "minute": minute.isoformat(),
            "first": runs[0],
            "runs": measured,
            "min_ms": min(walls),
            "median_ms": median(walls),
            "max_ms": max(walls),
            "phases_median_ms": {p: median([r["phases_ms"][p] for r in measured]) for p in PHASES},
            "reads_median_ms": {p: median([r["reads_ms"][p] for r in measured]) for p in READS},
            "events_median": median([r["events"] for r in measured]),
            "finished_jobs_median": median([r["finished_jobs"] for r in measured]),
            "process_cpu_median_ms": median([r["process_cpu_ms"] for r in measured]),
            "redis_cpu_median_ms": median([r["redis_cpu_ms"] for r in measured]),
            "machine_busy_median_pct": median([r["machine_busy_pct"] for r in measured]),
            "gc_full_collections": sum(r["gc_full_collections"] for r in measured),
            "gc_full_ms": sum(r["gc_full_ms"] for r in measured),
        }

    async def _profile_cycle(self, db: Database, collector: Collector) -> None:
        """One more cycle under cProfile (slower; for finding hot spots, not for the figures)."""
        assert self.profile is not None
        await self.burst()
        await db.delete_minute(from_ms(self.minute_ms), self.names)
        profiler = cProfile.Profile()
        profiler.enable()
        await collector.collect(self.names, minute_ms=self.minute_ms)
        profiler.disable()
        path = self.profile.with_name(f"{self.profile.stem}-{db.kind}{self.profile.suffix or '.pstats'}")
        profiler.dump_stats(path)
        self.notes.append(f"cProfile of one {db.label} cycle: {path}")

    def _redis_cpu(self) -> float:
        cpu: dict[str, Any] = self.admin.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    # --- phases alone -------------------------------------------------------------------------------

    async def raw_counts(self) -> dict[str, list[int]]:
        """The seven count commands of every queue in one pipeline: the floor for reading counts."""
        async with self.redis.pipeline(transaction=False) as pipe:
            command = pipe.execute_command
            for name in self.names:
                base = f"{self.bull_prefix}:{name}:"
                command("LLEN", base + "wait")
                command("LLEN", base + "active")
                command("ZCARD", base + "delayed")
                command("ZCARD", base + "prioritized")
                command("ZCARD", base + "waiting-children")
                command("ZCARD", base + "completed")
                command("ZCARD", base + "failed")
            replies = await pipe.execute()
        return {name: [int(v) for v in replies[7 * i : 7 * i + 7]] for i, name in enumerate(self.names)}

    async def _finished_all(self) -> int:
        """Finished jobs of every queue in the collected minute, read as the collector reads them."""
        found = await self.backend.finished_between_many(
            self.names, self.minute_ms, self.minute_ms + MINUTE_MS
        )
        return sum(len(jobs) for jobs in found.values())

    async def phases_alone(self) -> tuple[dict[str, Any], dict[str, QueueState]]:
        """Each phase on its own, on the data the cycles read (no job runs in between)."""
        raw: list[float] = []
        states: list[float] = []
        follow: list[float] = []
        counters: list[float] = []
        durations: list[float] = []
        last_states: dict[str, QueueState] = {}
        raw_counts: dict[str, list[int]] = {}
        finished = 0
        for _ in range(self.plan.reps):
            now = _now_ms()
            raw_counts, seconds = await _timed(self.raw_counts())
            raw.append(seconds)
            last_states, seconds = await _timed(self.backend.states(self.names, now))
            states.append(seconds)
            follow.append((await _timed(self.follower.follow_many(self.names, now)))[1])
            counters.append((await _timed(self.follower.minutes(self.names, self.minute_ms)))[1])
            finished, seconds = await _timed(self._finished_all())
            durations.append(seconds)
        self._check_counts("raw pipeline", raw_counts, last_states)
        result: dict[str, Any] = {
            "reps": self.plan.reps,
            "raw_counts_ms": 1000.0 * median(raw),
            "states_ms": 1000.0 * median(states),
            "states_over_raw": ratio(median(states), median(raw)),
            "follow_idle_ms": 1000.0 * median(follow),
            "counters_ms": 1000.0 * median(counters),
            "durations_ms": 1000.0 * median(durations),
            "finished_jobs": finished,
            "write_ms": {},
        }
        for db in self.databases:
            result["write_ms"][db.kind] = 1000.0 * median(await self._writes_alone(db))
        return result, last_states

    async def _writes_alone(self, db: Database) -> list[float]:
        """store.write of the last cycle's rows, each time under a minute nobody wrote yet."""
        store = SnapshotStore(db.engine)
        rows = self.last_rows.get(db.kind, [])
        seconds = []
        for rep in range(self.plan.reps):
            minute = from_ms(self.minute_ms - (10_000 + rep) * MINUTE_MS)
            moved = [replace(row, minute=minute) for row in rows]
            written, took = await _timed(store.write(moved))
            seconds.append(took)
            if sum(written) != len(rows):
                self.warnings.append(f"{db.label} write alone: {sum(written)} of {len(rows)} rows written")
            await db.delete_minute(minute, self.names)
        return seconds

    def _check_counts(self, source: str, counts: dict[str, list[int]], states: dict[str, QueueState]) -> None:
        wrong = [
            name
            for name in self.names
            if name not in states
            or counts.get(name)
            != [
                states[name].waiting,
                states[name].active,
                states[name].delayed,
                states[name].prioritized,
                states[name].waiting_children,
                states[name].completed,
                states[name].failed,
            ]
        ]
        if wrong:
            self.warnings.append(f"{source}: counts differ from backend.states for {len(wrong)} queues")

    # --- the first plan's baseline ------------------------------------------------------------------

    async def naive(self, states: dict[str, QueueState]) -> dict[str, Any]:
        """For each queue, one after another: a new bullmq.Queue, getJobCounts, close (counts only)."""
        counts: dict[str, list[int]] = {}
        started = time.perf_counter()
        for name in self.names:
            queue = Queue(name, {"connection": self.redis_url, "prefix": self.bull_prefix})
            try:
                reply = await queue.getJobCounts(*COUNT_TYPES)
            finally:
                await queue.close()
            counts[name] = [int(reply[t]) for t in COUNT_TYPES]
        seconds = time.perf_counter() - started
        self._check_counts("bullmq getJobCounts", counts, states)
        return {"queues": len(self.names), "seconds": seconds, "per_queue_ms": 1000.0 * seconds / len(counts)}

    # --- QuerySnapshots -----------------------------------------------------------------------------

    async def load_history(self) -> dict[str, Any]:
        """24 h of minute rows and `history_days` of hourly rollups for `history_queues` queues in PostgreSQL.

        The minutes are written with SnapshotStore.write and rolled up with SnapshotStore.rollup, as the
        collector's hourly job does; the older days repeat that day's rollups (`repeat_rollups`). Then
        VACUUM ANALYZE and a CHECKPOINT: tables in their steady state (planner statistics, visibility
        map, no bulk-load write-back or autovacuum pass landing in the middle of the measured queries).
        """
        plan = self.plan
        if self.postgres is None:
            return {"skipped": True, "note": "no PostgreSQL: QuerySnapshots not measured"}
        db = self.postgres
        self.history_now = floor_time(datetime.now(UTC), MINUTE)
        store = SnapshotStore(db.engine, clock=lambda: self.history_now)
        pool = summary_pool(64)
        self.history_names = [f"history-{i:03d}" for i in range(plan.history_queues)]
        started = time.perf_counter()
        for index, name in enumerate(self.history_names):
            await store.write(history_rows(name, index, self.history_now, plan.history_minutes, pool))
        insert_s = time.perf_counter() - started
        rolled, rollup_s = await _timed(store.rollup(self.history_now))
        hours = -(-plan.history_minutes // 60)
        first_hour = floor_time(self.history_now, HOUR) - hours * HOUR
        copies = -(-plan.history_days * 24 // hours) - 1
        copied, copy_s = await _timed(repeat_rollups(db.engine, first_hour, hours, copies))
        async with db.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in (snapshots, rollups):
                await auto.exec_driver_sql(f"VACUUM ANALYZE {table.name}")
            try:
                await auto.exec_driver_sql("CHECKPOINT")
            except Exception as exc:  # needs superuser or pg_checkpoint: measure without it
                self.notes.append(f"CHECKPOINT after the history load failed ({type(exc).__name__})")
        rows = plan.history_queues * plan.history_minutes
        return {
            "skipped": False,
            "queues": plan.history_queues,
            "minutes": plan.history_minutes,
            "rows": rows,
            "insert_s": insert_s,
            "insert_rows_per_s": ratio(rows, insert_s),
            "rollups": {
                "days": plan.history_days,
                "rolled": rolled,
                "rollup_s": rollup_s,
                "copied": copied,
                "copy_s": copy_s,
                "rows": rolled + copied,
            },
        }

    async def query_history(self, loaded: dict[str, Any]) -> dict[str, Any]:
        """QuerySnapshots for random history queues: 24 h at a 1-minute step, then 7 and 30 days at a
        1-hour step from the rollups; each through the store, then through gRPC."""
        if loaded["skipped"] or self.postgres is None:
            return loaded
        plan, db, now, names = self.plan, self.postgres, self.history_now, self.history_names
        store = SnapshotStore(db.engine, clock=lambda: now)
        rng = random.Random(3)

        async def store_calls(span: timedelta, step: timedelta, resolution: str) -> dict[str, Any]:
            expected = _buckets(now - span, now, step)
            with_data: set[int] = set()

            async def call() -> None:
                points, read = await store.query(rng.choice(names), now - span, now, step)
                with_data.add(sum(p.has_data for p in points))
                if read != resolution or with_data != {expected}:
                    self.warnings.append(
                        f"store.query {span}: {read}, {sorted(with_data)} of {len(points)} points with "
                        f"data, expected {expected}"
                    )

            result = await self._calls(call, plan.query_calls)
            return {**result, "points_with_data": sorted(with_data)}

        day = timedelta(minutes=plan.history_minutes)
        store_result = await store_calls(day, MINUTE, "minute")
        trends: dict[str, Any] = {
            key: {
                "days": span.days,
                "step_s": int(HOUR.total_seconds()),
                "points": _buckets(now - span, now, HOUR),
                "resolution": "hourly",
                "store": await store_calls(span, HOUR, "hourly"),
            }
            for key, span in TRENDS.items()
        }
        async with self._collector_stub(db, now) as stub:
            grpc_result = await self._grpc_queries(stub, names, now - day, now, MINUTE)
            for key, span in TRENDS.items():
                # No step, as MonitorService.GetQueueTrend asks for `hours`: the server picks 1 hour.
                trends[key]["grpc"] = await self._grpc_queries(stub, names, now - span, now, None)
        return {**loaded, "store": store_result, "grpc": grpc_result, "trends": trends}

    async def settle_minute(self) -> float:
        """Wait until the collected minute is over, so later bursts add nothing to it (as in production,
        where a cycle collects the last complete minute). Returns the seconds waited."""
        if not self.plan.complete_minute:
            self.notes.append(
                "the collected minute may still be in progress: jobs finished before later cycles add to it"
            )
            return 0.0
        wait = (self.minute_ms + MINUTE_MS) / 1000 + 0.5 - time.time()
        if wait > 0:
            print(
                f"           waiting {wait:.0f} s for minute {from_ms(self.minute_ms):%H:%M} to end",
                file=sys.stderr,
                flush=True,
            )
            await asyncio.sleep(wait)
        return max(wait, 0.0)

    @staticmethod
    async def _calls(call: Callable[[], Awaitable[Any]], count: int, warmup: int = 5) -> dict[str, Any]:
        """`count` sequential calls after a warm-up: latency figures, machine load and garbage collections."""
        for _ in range(warmup):
            await call()
        seconds = []
        machine = machine_sample()
        with GcWatch() as collections:
            for _ in range(count):
                _, took = await _timed(call())
                seconds.append(took)
        return {
            **latency_stats(seconds),
            "machine_busy_pct": machine_sample().busy_pct_since(machine),
            **collections.to_dict(),
            "samples_ms": [round(1000 * s, 3) for s in seconds],
        }

    @asynccontextmanager
    async def _collector_stub(
        self, db: Database, now: datetime
    ) -> AsyncIterator[pb_grpc.CollectorServiceStub]:
        """CollectorService served in this process on `db`, its clock at `now`, and a viewer's stub."""
        authority = TokenAuthority(secrets.token_urlsafe(48))
        # The heartbeat peer is unreachable on purpose: the benchmark measures the collector's own work.
        core = load_settings(
            redis_url=self.redis_url,
            database_url=db.url,
            redis_prefix=self.prefix,
            grpc_port=0,
            heartbeat_target="127.0.0.1:9",
        )
        deps = open_dependencies(
            core,
            overrides={
                "queue_prefix": self.bull_prefix,
                "queues": "",
                "discover_queues": False,
                "collector_schedule": False,
            },
            authority=authority,
            clock=now.timestamp,
        )
        # As the service does once its server has started, the built objects are frozen (gc.freeze).
        running = await start_suite(core, "collector", deps)
        suite = running.server
        assert suite is not None
        channel = open_channel(f"127.0.0.1:{suite.port}", authority.mint("bench", "viewer"))
        try:
            yield pb_grpc.CollectorServiceStub(channel)
        finally:
            await channel.close()
            await running.stop()

    async def _grpc_queries(
        self,
        stub: pb_grpc.CollectorServiceStub,
        names: list[str],
        start: datetime,
        end: datetime,
        step: timedelta | None,
    ) -> dict[str, Any]:
        """The store's queries through CollectorService.QuerySnapshots; no `step` lets the server choose."""
        rng = random.Random(5)
        begin, finish = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
        begin.FromDatetime(start)
        finish.FromDatetime(end)
        expected_step = step or HOUR
        expected = _buckets(start, end, expected_step)
        sizes: list[int] = []
        with_data: set[int] = set()

        async def call() -> None:
            request = pb.QuerySnapshotsRequest(queue=rng.choice(names), start_time=begin, end_time=finish)
            if step is not None:
                request.step.FromTimedelta(step)
            reply = await stub.QuerySnapshots(request, timeout=10)
            with_data.add(sum(p.has_data for p in reply.points))
            if with_data != {expected} or reply.step.ToTimedelta() != expected_step:
                self.warnings.append(
                    f"QuerySnapshots {end - start}: {sorted(with_data)} of {len(reply.points)} points with "
                    f"data at step {reply.step.ToTimedelta()}, expected {expected} at {expected_step}"
                )
            sizes.append(reply.ByteSize())

        result = await self._calls(call, self.plan.grpc_calls)
        return {**result, "response_bytes": int(median(sizes)), "points_with_data": sorted(with_data)}


def _buckets(start: datetime, end: datetime, step: timedelta) -> int:
    """Points a query of [start, end) returns at `step` (epoch-aligned buckets, as SnapshotStore.plan)."""
    return -(-(end - floor_time(start, step)) // step)


async def run(plan: Plan, use_postgres: bool = True, profile: Path | None = None) -> dict[str, Any]:
    """Every phase, in order; the dict is what goes to the JSON file."""
    started = time.time()
    timeline: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(stage: str, following: str = "") -> None:
        """Close a stage's time and say on stderr what comes next (a full run is silent for minutes)."""
        nonlocal mark
        now = time.perf_counter()
        timeline[stage] = now - mark
        mark = now
        if following:
            print(f"[{time.time() - started:6.1f} s] {following}", file=sys.stderr, flush=True)

    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="workermon-bench-")))
        bench = Bench(plan, stack, tmp, profile)
        await bench.open(use_postgres)
        results = record.run_header(plan)
        results["topology"] = await bench.topology()
        lap("setup", "populating the queues with bullmq")
        results["populate"] = await bench.populate()
        loading = f"24 h of minutes and {plan.history_days} days of rollups for QuerySnapshots"
        lap("populate", loading if bench.postgres else "")
        history = await bench.load_history()
        lap("history", "")
        results["populate"]["waited_for_minute_s"] = await bench.settle_minute()
        # The service freezes what it built at start-up out of the garbage collector's sight (cli
        # runtime, after the server starts); do the same with everything built so far.
        gc.freeze()
        lap("settle", "collection cycles")
        results["cycle"] = {db.kind: await bench.cycles(db) for db in bench.databases}
        lap("cycles", "phases alone")
        results["phases_alone"], states = await bench.phases_alone()
        lap("phases_alone", "per-queue bullmq baseline")
        results["naive"] = await bench.naive(states)
        lap("naive", "QuerySnapshots queries")
        results["query"] = await bench.query_history(history)
        lap("query", "cleanup")
        results["warnings"] = bench.warnings
        results["notes"] = bench.notes
    lap("cleanup")
    results["cleanup"] = bench.cleanup
    results["timeline_s"] = timeline
    results["elapsed_s"] = time.time() - started
    report.derive(results)
    return results


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.collector", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (under 30 seconds)")
    parser.add_argument("--queues", type=int, help="queues to create")
    parser.add_argument("--jobs", type=int, help="jobs added to each queue")
    parser.add_argument("--cycles", type=int, help="measured collection cycles per database")
    parser.add_argument("--procs", type=int, help="processes filling the queues (default: one per CPU)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only, even if PostgreSQL answers")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results (default {RESULTS})")
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile one extra cycle per database into PATH-<database>.pstats (not part of the figures)",
    )
    return parser.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    overrides = {
        "queues": args.queues,
        "jobs_per_queue": args.jobs,
        "cycles": args.cycles,
        "procs": args.procs,
    }
    chosen = {k: v for k, v in overrides.items() if v is not None}
    plan = replace(plan, **chosen)
    if chosen:  # another size measures something else than the plan it started from
        plan = replace(plan, mode="custom")
    if plan.queues < 1 or plan.jobs_per_queue < 1 or plan.cycles < 1:
        raise SystemExit("queues, jobs and cycles must be at least 1")
    if args.queues is not None:
        plan = replace(plan, busy_queues=max(1, plan.queues // 10))
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    configure_logging("warning", "console")  # the collector logs every cycle at info
    profile = args.profile.resolve() if args.profile else None
    results = asyncio.run(run(_plan(args), use_postgres=not args.no_postgres, profile=profile))
    return text.publish(results, report.table, args.output)


if __name__ == "__main__":
    sys.exit(main())
