"""A local HTTP server standing in for a webhook receiver (a chat tool, a pager): it records every request
and answers from a script."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Request:
    """One request a receiver got, and what it answered."""

    at: float
    path: str
    headers: dict[str, str]
    body: Any
    status: int


@dataclass
class HttpReceiver:
    """A local HTTP server that records every request and answers from a script (then 200)."""

    answers: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = self.answers.pop(0) if self.answers else 200
        self.requests.append(Request(time.monotonic(), request.path, dict(request.headers), body, status))
        delay = self.delays.pop(0) if self.delays else 0.0
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    @property
    def accepted(self) -> list[Request]:
        """The requests answered with a 2xx: the notifications the receiver actually took."""
        return [r for r in self.requests if 200 <= r.status < 300]


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """`app` listening on a free loopback port: its runner (to clean up) and its http://host:port."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def http_receivers() -> AsyncIterator[Callable[..., Awaitable[HttpReceiver]]]:
    """`start(answers=[...], delays=[...])` starts a receiver on a free port; all stop on exit."""
    runners: list[web.AppRunner] = []

    async def start(answers: list[int] | None = None, delays: list[float] | None = None) -> HttpReceiver:
        receiver = HttpReceiver(answers=list(answers or []), delays=list(delays or []))
        app = web.Application()
        app.router.add_post("/{path:.*}", receiver.handle)
        runner, base = await serve(app)
        runners.append(runner)
        receiver.url = f"{base}/hooks/T0K3N"
        return receiver

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[..., Awaitable[HttpReceiver]]]:
    """`await http_server(answers=[...], delays=[...])`: a receiver for the test (see `http_receivers`)."""
    async with http_receivers() as start:
        yield start
