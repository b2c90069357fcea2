"""Keys that are not what BullMQ would have written, described for an operator.

A queue whose `wait` key holds a string (someone ran `SET bull:x:wait x`) answers every command on that
key with WRONGTYPE. Readers pipeline many queues together and ask Redis for per-command errors, so such a
reply costs only its own queue; this module turns those replies into sentences like
"bull:x:wait is a string, expected a list" (one TYPE per broken key, asked only when something broke).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from ..client import RedisClient
from ..replies import text, wrong_type

__all__ = ["Kind", "describe", "key_problems", "wrong_types_kept"]

Kind = Literal["list", "zset", "hash", "stream"]

_NAMES = {
    "string": "a string",
    "list": "a list",
    "set": "a set",
    "zset": "a sorted set",
    "hash": "a hash",
    "stream": "a stream",
}


def describe(key: str, actual: str, expected: str) -> str:
    """`bull:x:wait is a string, expected a list` (`actual` and `expected` are Redis TYPE names)."""
    if actual == "none":
        return f"{key} changed type while it was read, expected {_NAMES.get(expected, expected)}"
    return f"{key} is {_NAMES.get(actual, actual)}, expected {_NAMES.get(expected, expected)}"


def wrong_types_kept(replies: Sequence[Any]) -> list[Any]:
    """Pipeline replies (read with `raise_on_error=False`) with errors on keys of another type left in
    place for the caller to judge; any other error is raised, as a plain `execute()` would."""
    for reply in replies:
        if isinstance(reply, Exception) and not wrong_type(reply):
            raise reply
    return list(replies)


async def key_problems(
    redis: RedisClient, failures: Iterable[tuple[str, Kind, BaseException]]
) -> dict[str, str]:
    """Key -> what is wrong with it, for commands that failed on it (`(key, expected type, error)`).

    WRONGTYPE errors are described with the key's actual type (one pipelined TYPE for all of them);
    any other per-command error is given as Redis worded it.
    """
    problems: dict[str, str] = {}
    typed: dict[str, str] = {}
    for key, expected, error in failures:
        if key in problems or key in typed:
            continue
        if wrong_type(error):
            typed[key] = expected
        else:
            problems[key] = f"{key}: {error}"
    if typed:
        async with redis.pipeline(transaction=False) as pipe:
            for key in typed:
                pipe.type(key)
            actual = await pipe.execute()
        problems.update(_described(typed, [text(a) for a in actual]))
    return problems


def _described(expected: Mapping[str, str], actual: list[str]) -> dict[str, str]:
    return {key: describe(key, kind, expected[key]) for key, kind in zip(expected, actual, strict=True)}
