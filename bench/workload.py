"""The simulated fleet: what each benchmark worker reports, identical in every phase and process.

A worker's identity (instance, host, queues, labels, version, concurrency) never changes between its
beats, so the registry sees steady beats and no UPDATED transitions; only the load figures move, as
they do in production.
"""

from __future__ import annotations

import random

from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb

QUEUES = (
    "emails",
    "thumbnails",
    "billing",
    "webhooks",
    "search-index",
    "reports",
    "notifications",
    "imports",
)
REGIONS = ("eu-west-1", "us-east-1", "ap-southeast-2")
TEAMS = ("growth", "payments", "platform", "media")
HOSTS = 64
# Beats of one worker cycle through this many load readings, so consecutive beats differ.
VARIANTS = 4
STARTED_AT_S = 1_800_000_000
SDK = "workermon-sdk-python/0.1.0"


def worker_id(index: int) -> str:
    """The id of the index-th benchmark worker; sorted ids follow the index."""
    return f"bench/worker-{index:06d}"


def report(index: int, beat: int) -> pb.WorkerReport:
    """The report worker `index` sends on its `beat`-th beat: 1-2 queues, labels and gauges."""
    rng = random.Random(index)  # the worker's identity is fixed by its index
    queues = rng.sample(QUEUES, 1 + index % 2)
    concurrency = rng.choice((4, 8, 16))
    active = (index + beat) % (concurrency + 1)
    rep = pb.WorkerReport(
        worker_id=worker_id(index),
        instance_id=f"{index:08x}{rng.getrandbits(64):016x}",
        hostname=f"bench-host-{index % HOSTS:02d}",
        pid=1000 + index % 30_000,
        queues=queues,
        labels={"region": rng.choice(REGIONS), "team": rng.choice(TEAMS), "deploy": "2026-11-26.3"},
        version="1.14.2",
        concurrency=concurrency,
        active_jobs=active,
        processed_total=1000 * index + 37 * beat,
        failed_total=index % 7 + beat // 3,
        active_job_ids=[f"{queues[0]}:{index * 100 + beat + j}" for j in range(min(active, 3))],
        state=pb.WORKER_STATE_RUNNING,
        sdk=SDK,
    )
    rep.gauges.cpu_percent = 5.0 + (index * 7 + beat * 13) % 90
    rep.gauges.rss_bytes = (180 + (index + beat) % 200) * 1024 * 1024
    rep.gauges.custom["event_loop_lag_ms"] = 0.5 + beat % 5
    rep.gauges.custom["redis_pool_in_use"] = float((index + beat) % 10)
    rep.started_at.FromSeconds(STARTED_AT_S + index)
    return rep


def beat_bytes(index: int, beat: int) -> bytes:
    """A serialized BeatRequest (BeatStreamRequest has the same fields and numbers)."""
    return pb.BeatRequest(report=report(index, beat)).SerializeToString()


def beat_messages(first: int, count: int) -> list[bytes]:
    """Serialized beats for workers [first, first + count), ordered so that cycling through the list
    visits every worker once before any worker beats again."""
    return [beat_bytes(i, v) for v in range(VARIANTS) for i in range(first, first + count)]
