"""Load jobs of the gateway benchmark, run in a load-generator process (bench.client.serve).

`read_job`: closed-loop HTTP callers of one JSON route with a viewer token, each on its own
keep-alive connection, parsing every answer as a browser would: `HttpReadJob`, whose warm-up,
connections and timing are those of the gRPC side (`GrpcReadJob`). `SseJob`: many open
`GET {base}/v1/stream` clients, each reading its stream continuously and counting the events, and
noting when each `worker` event arrived.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import quote

import aiohttp

from .client import Ready, _await_window
from .monitor_client import HttpReadJob

# The route of each read, and the answer's field that counts its queues.
ROUTES = {"overview": ("/v1/overview", "queuesTotal"), "queues": ("/v1/queues", "queues")}


def read_job(base_url: str, token: str, rpc: str, *, callers: int, calls: int, queues: int) -> HttpReadJob:
    """Closed-loop callers of GET {base}/v1/overview or /v1/queues with a viewer token, measured as the
    gRPC side is (`HttpReadJob`); an answer without `queues` queues counts as an error."""
    route, items_key = ROUTES[rpc]
    return HttpReadJob(base_url + route, callers, calls, items_key, token=token, expected_items=queues)


# --- Server-Sent Events --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Reader:
    """One SSE client: event counts by kind, keep-alives, and when each worker event arrived."""

    events: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    worker_arrivals: dict[str, float] = field(default_factory=dict)  # workerId -> time.time()
    first_event: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False  # the server ended the stream (or the connection broke) before the window did
    error: str = ""

    async def follow(self, response: aiohttp.ClientResponse) -> None:
        kind, data, comment = "message", b"", False
        try:
            async for raw in response.content:
                line = raw.rstrip(b"\r\n")
                if not line:
                    if data:
                        self._event(kind, data)
                    elif comment:
                        self.pings += 1
                    kind, data, comment = "message", b"", False
                elif line.startswith(b":"):
                    comment = True
                elif line.startswith(b"event:"):
                    kind = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data = line[5:].strip()
        except (aiohttp.ClientError, ConnectionError) as exc:
            self.error = repr(exc)
        self.ended = True

    def _event(self, kind: str, data: bytes) -> None:
        now = time.time()
        self.events[kind] += 1
        if kind == "worker":
            payload: dict[str, Any] = json.loads(data)
            self.worker_arrivals.setdefault(str(payload.get("workerId")), now)
        self.first_event.set()


@dataclass(slots=True)
class SseResult:
    """What every stream saw; arrival times are time.time() of this machine."""

    clients: int
    opened: int = 0
    open_s: float = 0.0
    open_errors: int = 0
    open_error_sample: str = ""
    initial_events: int = 0  # clients that received their first event (the current overview) before Ready
    ended_early: int = 0
    end_sample: str = ""
    events: dict[str, int] = field(default_factory=dict)  # by kind, every client, within the window
    events_min: dict[str, int] = field(default_factory=dict)  # by kind, the client that saw fewest
    pings: int = 0
    arrivals: dict[str, list[float]] = field(default_factory=dict)  # workerId -> one time per client
    seconds: float = 0.0
    client_cpu_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SseJob:
    """`clients` streams on GET {base}/v1/stream?access_token=..., one connection each, open until the
    window ends; opened `open_concurrency` at a time."""

    base_url: str
    token: str
    clients: int
    open_concurrency: int = 50
    first_event_timeout_s: float = 30.0

    async def run(self, conn: Connection) -> SseResult:
        """Open every stream, say Ready, read until the window ends, report."""
        url = f"{self.base_url}/v1/stream?access_token={quote(self.token)}"
        # No total or read timeout: a stream is idle between keep-alives.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30.0, sock_read=None)
        connector = aiohttp.TCPConnector(limit=0)
        result = SseResult(clients=self.clients)
        readers = [_Reader() for _ in range(self.clients)]
        responses: list[aiohttp.ClientResponse] = []
        tasks: list[asyncio.Task[None]] = []
        gate = asyncio.Semaphore(self.open_concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def open_one(reader: _Reader) -> None:
                async with gate:
                    response = await session.get(url, headers={"Accept": "text/event-stream"})
                if response.status != 200:
                    body = await response.read()
                    response.release()
                    raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
                responses.append(response)
                tasks.append(asyncio.create_task(reader.follow(response)))

            began = time.perf_counter()
            outcomes = await asyncio.gather(*(open_one(r) for r in readers), return_exceptions=True)
            failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
            result.opened = self.clients - len(failures)
            result.open_errors = len(failures)
            result.open_error_sample = failures[0] if failures else ""
            opened = [r for r, o in zip(readers, outcomes, strict=True) if not isinstance(o, BaseException)]
            waits = [asyncio.wait_for(r.first_event.wait(), self.first_event_timeout_s) for r in opened]
            await asyncio.gather(*waits, return_exceptions=True)
            result.open_s = time.perf_counter() - began
            result.initial_events = sum(r.first_event.is_set() for r in opened)
            # Counted from the window on: the initial overview is not part of what the window measures.
            for reader in opened:
                reader.events.clear()
                reader.pings = 0
            ready = Ready(
                streams=result.opened,
                open_s=result.open_s,
                open_errors=result.open_errors,
                open_error_sample=result.open_error_sample,
            )
            meter = await _await_window(conn, ready)
            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.sleep(max(0.0, meter.end - time.perf_counter()))
            result.seconds = time.perf_counter() - started
            result.client_cpu_s = time.process_time() - cpu
            ended = [r for r in opened if r.ended]
            result.ended_early = len(ended)
            result.end_sample = next((r.error for r in ended if r.error), "stream ended" if ended else "")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for response in responses:
                response.close()
        kinds = sorted({k for r in opened for k in r.events})
        result.events = {k: sum(r.events[k] for r in opened) for k in kinds}
        result.events_min = {k: min(r.events[k] for r in opened) for k in kinds}
        result.pings = sum(r.pings for r in opened)
        for reader in opened:
            for worker, at in reader.worker_arrivals.items():
                result.arrivals.setdefault(worker, []).append(at)
        return result
