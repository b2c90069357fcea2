"""The benchmarks' read callers (bench.monitor_client) against a real HTTP server: every connection is
open and has answered before the timing, answers are parsed in it, and what fails counts as failed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from multiprocessing import Pipe
from multiprocessing.connection import Connection

import pytest
from aiohttp import web

from bench.client import Ready, Window
from bench.monitor_client import WARMUP_CALLS, CallsResult, HttpReadJob
from tests.support.webhooks import serve


@dataclass(slots=True)
class Board:
    """A JSON endpoint listing `queues` queues, or answering `body` with `status` when set."""

    queues: int = 3
    body: bytes = b""
    status: int = 200
    connections: set[object] = field(default_factory=set)
    requests: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.connections.add(request.transport)
        if self.body:
            return web.Response(body=self.body, status=self.status, content_type="application/json")
        return web.json_response({"queues": [{"name": f"q{k}"} for k in range(self.queues)]})


@pytest.fixture
async def board() -> AsyncIterator[tuple[Board, str]]:
    state = Board()
    app = web.Application()
    app.router.add_get("/api/queues", state.handle)
    runner, base = await serve(app)
    try:
        yield state, f"{base}/api/queues"
    finally:
        await runner.cleanup()


async def _run(job: HttpReadJob, board: Board) -> tuple[CallsResult, tuple[int, int]]:
    """Run `job` as the load generator does; also (connections, requests) the server had seen when
    the job said it was ready."""
    ours, theirs = Pipe()
    at_ready: list[tuple[int, int]] = []

    def orchestrator(conn: Connection) -> None:
        assert isinstance(conn.recv(), Ready)
        at_ready.append((len(board.connections), board.requests))
        conn.send(Window(0.0, 0.0))

    # The orchestrator reads the server's counters from another thread while the loop runs the job.
    thread = threading.Thread(target=orchestrator, args=(theirs,), daemon=True)
    thread.start()
    try:
        result = await asyncio.wait_for(job.run(ours), timeout=60)
    finally:
        thread.join(timeout=10)
        ours.close()
        theirs.close()
    return result, at_ready[0]


async def test_every_connection_is_open_and_answered_before_the_timing(board: tuple[Board, str]) -> None:
    state, url = board
    job = HttpReadJob(url, callers=5, calls_per_caller=4, items_key="queues", expected_items=3)
    result, (connections, requests) = await _run(job, state)
    assert (connections, requests) == (5, WARMUP_CALLS + 5)
    # The timed calls reuse those connections: one per caller, none opened inside the timing.
    assert len(state.connections) == 5
    assert state.requests == WARMUP_CALLS + 5 + 20
    assert len(result.latencies_ms) == 20
    assert (result.errors, result.timeouts) == (0, 0)
    assert result.items == 3
    assert result.response_bytes == len(json.dumps({"queues": [{"name": f"q{k}"} for k in range(3)]}))


@pytest.mark.parametrize(
    ("queues", "body", "status"),
    [
        (2, b"", 200),  # parses, but lists fewer queues than the run made
        (3, b"<html>not json</html>", 200),
        (3, b'{"error": "boom"}', 500),
    ],
)
async def test_what_does_not_answer_right_counts_as_an_error(
    board: tuple[Board, str], queues: int, body: bytes, status: int
) -> None:
    state, url = board
    state.queues, state.body, state.status = queues, body, status
    job = HttpReadJob(url, callers=2, calls_per_caller=3, items_key="queues", expected_items=3)
    result, _ = await _run(job, state)
    assert result.latencies_ms == []
    assert result.errors == 6
    assert result.error_sample
