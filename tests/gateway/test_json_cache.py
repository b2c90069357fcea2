"""Answers' JSON is encoded once per distinct gRPC reply: equal replies share it, the cache stays small."""

from __future__ import annotations

import json

from tests.support.gateway import Gateway
from workermon_gateway.json_cache import JsonCache


def test_equal_replies_are_rendered_once_and_the_cache_is_bounded() -> None:
    cache = JsonCache(max_entries=2, max_reply_bytes=10)
    rendered: list[bytes] = []

    def render(reply: bytes) -> dict[str, str]:
        rendered.append(reply)
        return {"reply": reply.decode(), "name": "é"}

    first = cache.body("/m/A", b"one", render)
    assert json.loads(first) == {"reply": "one", "name": "é"} and b"\xc3\xa9" in first
    assert cache.body("/m/A", b"one", render) is first
    # The same bytes from another method are another answer.
    cache.body("/m/B", b"one", render)
    cache.body("/m/A", b"two", render)
    assert rendered == [b"one", b"one", b"two"] and (cache.hits, cache.misses) == (1, 3)
    # At most two entries: the least recently used ("/m/A", b"one") went first.
    cache.body("/m/A", b"one", render)
    assert rendered[-1] == b"one"
    # Replies above the size limit are rendered every time and never kept.
    cache.body("/m/A", b"x" * 11, render)
    cache.body("/m/A", b"x" * 11, render)
    assert rendered[-2:] == [b"x" * 11, b"x" * 11]


async def test_the_gateway_reuses_the_json_of_an_equal_reply(gateway: Gateway) -> None:
    viewer = gateway.client("viewer")
    first = await viewer.get("/api/v1/workers:summary")
    second = await viewer.get("/api/v1/workers:summary")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content and first.headers["content-type"] == "application/json"
