"""Reading a gateway's live stream (Server-Sent Events) in tests."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Sse:
    event: str = "message"
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def is_ping(self) -> bool:
        return not self.data and bool(self.comments)


class SseReader:
    """Parses an httpx streaming response into events (comment-only blocks are keep-alives)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def block(self, within: float = 10.0) -> Sse:
        event = Sse()
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line == "":
                    if event.data or event.comments or event.id is not None:
                        return event
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "data":
                    event.data = f"{event.data}\n{value}" if event.data else value
                elif name in ("event", "id"):
                    setattr(event, name, value)
        raise EOFError("stream ended")

    async def next(self, within: float = 10.0, kinds: tuple[str, ...] | None = None) -> Sse:
        """The next event (keep-alives skipped), of one of `kinds` when given."""
        deadline = time.monotonic() + within
        while True:
            event = await self.block(max(0.01, deadline - time.monotonic()))
            if event.is_ping:
                continue
            if kinds is None or event.event in kinds:
                return event
