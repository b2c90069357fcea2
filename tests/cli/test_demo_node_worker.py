"""The demo's Node worker: the example of examples/node-worker, built by `npm --prefix sdk/node run build`
(which `make test` runs before pytest), reports to the heartbeat service and says goodbye when stopped."""

from __future__ import annotations

import time
import uuid

import pytest
import redis.asyncio as aioredis
from bullmq import Queue

from tests.support.bull import delete_prefix
from tests.support.heartbeat import maybe_worker_view, start_heartbeat
from tests.support.processes import wait_for
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon_cli import demo
from workermon_core.auth import TokenAuthority


async def test_the_node_worker_reports_processes_and_says_goodbye(
    redis_url: str, redis: aioredis.Redis, prefix: str, authority: TokenAuthority
) -> None:
    command = demo.node_worker_command()
    assert command is not None, "build the Node SDK first: npm --prefix sdk/node run build"
    live = await start_heartbeat(redis_url, prefix, authority, time.time, beat_interval_seconds=1)
    bull_prefix = "wmnode-" + uuid.uuid4().hex[:8]
    queue = Queue("reports", {"connection": redis_url, "prefix": bull_prefix})
    token = authority.mint(demo.NODE_WORKER_ID, "worker", 600, worker=demo.NODE_WORKER_ID)
    process = await demo.start_node_worker(
        command, target=live.target, token=token, redis_url=redis_url, prefix=bull_prefix
    )
    try:
        await queue.add("monthly", {"account": 1, "pages": 1})

        async def processed() -> bool:
            worker = await maybe_worker_view(live, demo.NODE_WORKER_ID)
            return worker is not None and worker.report.processed_total == 1

        await wait_for(processed, "the Node worker's first report", 30)
        worker = await maybe_worker_view(live, demo.NODE_WORKER_ID)
        assert worker is not None
        assert worker.report.sdk.startswith("workermon-node/")
        assert list(worker.report.queues) == ["reports"]
        assert worker.report.labels["language"] == "node"
        assert "open_browsers" in worker.report.gauges.custom

        await demo._stop_process(process)
        assert process.returncode == 0
        gone = await maybe_worker_view(live, demo.NODE_WORKER_ID)
        assert gone is not None
        assert gone.status == pb.WORKER_STATUS_OFFLINE
        assert gone.offline_reason == "goodbye: signal SIGTERM"
    finally:
        await demo._stop_process(process)
        await queue.close()
        await live.stop()
        await delete_prefix(redis, bull_prefix)


def test_without_node_the_demo_goes_on_without_a_node_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert demo.node_worker_command() is None
