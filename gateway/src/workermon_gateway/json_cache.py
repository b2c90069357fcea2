"""Answers' JSON, kept by the exact bytes of the gRPC reply they were made from.

Encoding the proto3 JSON of a large answer is the gateway's main cost (about 3 ms for the 100-queue
board), while MonitorService shares one reading of the board between all callers for a second: a
hundred dashboards then receive byte-identical replies. The JSON of a reply depends on its bytes alone,
so it is encoded once per distinct reply and reused, whoever asked.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

MAX_ENTRIES = 256
MAX_REPLY_BYTES = 256 * 1024


def encode(document: Any) -> bytes:
    """JSON bytes as Starlette's JSONResponse writes them."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class JsonCache:
    """A small LRU from (method, reply bytes) to the JSON body; big replies are encoded each time."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_reply_bytes: int = MAX_REPLY_BYTES) -> None:
        self.max_entries = max_entries
        self.max_reply_bytes = max_reply_bytes
        self._entries: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def body(self, method: str, reply: bytes, render: Callable[[bytes], Any]) -> bytes:
        """The JSON body for `reply` of `method`, rendering (`render(reply)` -> document) only on a miss."""
        if len(reply) > self.max_reply_bytes:
            self.misses += 1
            return encode(render(reply))
        key = (method, reply)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        body = encode(render(reply))
        self._entries[key] = body
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return body
