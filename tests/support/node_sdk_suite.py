"""The suite for the Node SDK's tests (sdk/node/test), driven over stdin/stdout in JSON lines.

`python -m tests.support.node_sdk_suite --redis-prefix P --bull-prefix B` starts HeartbeatService on a free
port against REDIS_URL (else an embedded Redis of its own), prints one line `{"target", "redisUrl"}`, then
answers one JSON line per request line: tokens minted as the tests mint them, the service stopped and started
again on the same port (a monitor outage), and a beat of the Python SDK's timing sketches (to merge with a
Node worker's). At end of input it stops, deletes the keys under both prefixes and any Redis it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.support.bull import delete_prefix, delete_suite_keys
from tests.support.fakes import TEST_SECRET
from tests.support.heartbeat import report
from tests.support.suites import start_modules
from workermon.heartbeat.v1 import heartbeat_service_pb2 as pb
from workermon.heartbeat.v1 import heartbeat_service_pb2_grpc as pb_grpc
from workermon_cli.runtime import Suite
from workermon_core.auth import TokenAuthority
from workermon_core.client import open_channel
from workermon_core.redis_store import EmbeddedRedis, connect
from workermon_sdk.timings import TimingRecorder


class Harness:
    """The running HeartbeatService and what the requests need."""

    def __init__(self, redis_url: str, redis_prefix: str, bull_prefix: str) -> None:
        self.redis_url = redis_url
        self.redis_prefix = redis_prefix
        self.bull_prefix = bull_prefix
        self.authority = TokenAuthority(TEST_SECRET)
        self.suite: Suite | None = None
        self.port = 0

    @property
    def target(self) -> str:
        """host:port of the service."""
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start HeartbeatService (on the port it had, after a stop); beats every second."""
        self.suite = await start_modules(
            "heartbeat",
            redis_url=self.redis_url,
            authority=self.authority,
            database_url="sqlite+aiosqlite:///:memory:",
            migrate_first=False,
            redis_prefix=self.redis_prefix,
            beat_interval_seconds=1,
            grpc_port=self.port,
            # The tests' BullMQ connections, read often, for the uninstrumented workers next to SDK ones.
            queue_prefix=self.bull_prefix,
            connection_scan_seconds=0.2,
            # Stopping must not wait out the default 10 s grace for the workers' open beat streams.
            shutdown_grace_seconds=0.2,
        )
        self.port = self.suite.grpc_port

    async def stop(self) -> None:
        """Stop the service (workers lose their stream)."""
        if self.suite is not None:
            suite, self.suite = self.suite, None
            await suite.stop()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one request."""
        match request["cmd"]:
            case "mint":
                worker = request.get("worker")
                return {
                    "token": self.authority.mint(worker or "node-sdk-test", request["role"], worker=worker)
                }
            case "service_token":
                # What MonitorService presents when it forwards an operator's command.
                return {"token": self.authority.mint("node-sdk-test", "operator", actor="monitor")}
            case "stop_heartbeat":
                await self.stop()
                return {}
            case "start_heartbeat":
                await self.start()
                return {"target": self.target}
            case "python_timings":
                await self.python_timings(request)
                return {}
        raise ValueError(f"unknown request {request['cmd']!r}")

    async def python_timings(self, request: dict[str, Any]) -> None:
        """One beat of a Python worker carrying the Python SDK's sketch of `samples` (ms) for one minute."""
        recorder = TimingRecorder()
        finished = int(request["finishedMs"])
        for sample in request["samples"]:
            recorder.record(request["queue"], finished, float(sample), None)
        worker = request["worker"]
        beat = pb.BeatRequest(
            report=report(
                worker, (request["queue"],), instance_id=uuid.uuid4().hex, timings=recorder.outgoing()
            )
        )
        channel = open_channel(self.target, self.authority.mint(worker, "worker", worker=worker))
        try:
            await pb_grpc.HeartbeatServiceStub(channel).Beat(beat, timeout=10)
        finally:
            await channel.close()


async def _lines() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


REPLY_MARK = "@@workermon-node-sdk-suite "
"""Starts every line meant for the test: the suite's own log lines may reach stdout too."""


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(REPLY_MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(redis_url: str, redis_prefix: str, bull_prefix: str) -> None:
    """Run until stdin closes, then clean up."""
    harness = Harness(redis_url, redis_prefix, bull_prefix)
    try:
        await harness.start()
        _say({"target": harness.target, "redisUrl": redis_url})
        reader = await _lines()
        while line := await reader.readline():
            request = json.loads(line)
            try:
                _say({"id": request.get("id"), **await harness.handle(request)})
            except Exception as exc:
                _say({"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"})
    finally:
        await harness.stop()
        client = connect(redis_url)
        try:
            await delete_suite_keys(client, redis_prefix)
            await delete_prefix(client, bull_prefix)
        finally:
            await client.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-prefix", required=True, help="the suite's Redis key prefix")
    parser.add_argument("--bull-prefix", required=True, help="the tests' BullMQ prefix (deleted at the end)")
    args = parser.parse_args()
    configured = os.environ.get("REDIS_URL")
    if configured:
        asyncio.run(serve(configured, args.redis_prefix, args.bull_prefix))
        return 0
    with tempfile.TemporaryDirectory(prefix="wm-node-sdk-") as data:
        server = EmbeddedRedis(Path(data))
        try:
            asyncio.run(serve(server.start(), args.redis_prefix, args.bull_prefix))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
