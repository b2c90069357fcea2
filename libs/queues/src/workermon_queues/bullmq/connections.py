"""BullMQ workers as Redis sees them: every BullMQ worker names its connection (CLIENT SETNAME), which
is how BullMQ's own `Queue.getWorkers()` finds them in CLIENT LIST. Node BullMQ names its blocking
connection `<prefix>:<base64 queue>[:w:<worker name>]`; Python bullmq names every connection of its
pool `<prefix>:<queue>[:w:<worker name>]`, the queue in plain text. This module reads CLIENT LIST on
every primary of the watched Redis and keeps the connections so named; it knows nothing of the suite's
own workers.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from workermon_core.redis_store import AnyRedis

__all__ = ["ClientListRefused", "WorkerConnection", "parse_worker_name", "worker_connections"]

# Managed Redis services that do not allow CLIENT LIST answer with one of these (BullMQ itself matches
# the first; the others are what ACLs and renamed commands answer).
_REFUSED = re.compile(r"unknown command|NOPERM|no permissions|not allowed|unknown subcommand", re.I)


class ClientListRefused(Exception):
    """The watched Redis does not allow CLIENT LIST, so BullMQ workers without the SDK cannot be seen."""


@dataclass(frozen=True, slots=True)
class WorkerConnection:
    """One BullMQ worker connection in CLIENT LIST."""

    node: str
    client_id: int
    addr: str
    name: str
    queue: str
    worker_name: str
    age_seconds: int
    idle_seconds: int

    @property
    def host(self) -> str:
        """The client's IP address (addr without its port)."""
        return self.addr.rpartition(":")[0] or self.addr


def parse_worker_name(name: str, prefix: str) -> tuple[str, str] | None:
    """(queue, worker name) of a BullMQ worker connection name, None for any other connection.

    Node's form first: base64 has no colon, so the first colon after the prefix ends the queue, and
    QueueEvents (`...:qe`) are not workers. A queue part that is not base64 of printable text is
    Python's plain queue name, which may itself hold colons: the worker name follows the last `:w:`."""
    head = prefix + ":"
    if not name.startswith(head):
        return None
    rest = name[len(head) :]
    encoded, sep, tail = rest.partition(":")
    decoded = _base64_text(encoded)
    if decoded is not None:
        if sep and not tail.startswith("w:"):
            return None
        return decoded, tail[2:] if sep else ""
    queue, sep, worker = rest.rpartition(":w:")
    if not sep:
        queue, worker = rest, ""
    return (queue, worker) if queue and not queue.endswith(":qe") else None


def _base64_text(encoded: str) -> str | None:
    """The printable text `encoded` is the base64 of, or None."""
    try:
        text = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return text if text and text.isprintable() else None


async def worker_connections(redis: AnyRedis, prefix: str) -> list[WorkerConnection]:
    """The BullMQ worker connections of every primary, ordered by node and client id.

    Raises ClientListRefused where the server refuses CLIENT LIST; other Redis errors propagate."""
    found: list[WorkerConnection] = []
    for node, clients in await _client_lists(redis):
        for client in clients:
            parsed = parse_worker_name(client.get("name", ""), prefix)
            if parsed is None:
                continue
            found.append(
                WorkerConnection(
                    node=node,
                    client_id=int(client.get("id", 0)),
                    addr=client.get("addr", ""),
                    name=client["name"],
                    queue=parsed[0],
                    worker_name=parsed[1],
                    age_seconds=int(client.get("age", 0)),
                    idle_seconds=int(client.get("idle", 0)),
                )
            )
    found.sort(key=lambda c: (c.node, c.client_id))
    return found


async def _client_lists(redis: AnyRedis) -> list[tuple[str, list[dict[str, str]]]]:
    """(node address, parsed CLIENT LIST of its normal clients) for each primary."""
    try:
        if isinstance(redis, RedisCluster):
            await redis.initialize()  # a new cluster client knows no node until it has read the slots
            out = []
            for primary in redis.get_primaries():
                clients = await redis.client_list(_type="normal", target_nodes=primary)
                out.append((f"{primary.host}:{primary.port}", _as_list(clients)))
            return out
        kwargs = redis.connection_pool.connection_kwargs
        # A Sentinel-managed pool names no host: its primary moves.
        node = f"{kwargs['host']}:{kwargs.get('port', 6379)}" if kwargs.get("host") else "primary"
        return [(node, _as_list(await redis.client_list(_type="normal")))]
    except ResponseError as error:
        if _REFUSED.search(str(error)):
            raise ClientListRefused(str(error)) from error
        raise


def _as_list(reply: object) -> list[dict[str, str]]:
    """redis-py's parsed CLIENT LIST (a cluster call to one node may wrap it in {node: reply})."""
    if isinstance(reply, dict):
        reply = next(iter(reply.values()), [])
    if not isinstance(reply, list):
        return []
    return [{str(k): str(v) for k, v in client.items()} for client in reply if isinstance(client, dict)]
