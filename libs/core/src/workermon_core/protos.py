"""Helpers for protobuf messages shared by every service: timestamps, and public messages that mirror
internal ones.

A public API (MonitorService) defines its own messages rather than importing an internal service's, so
that the internal one can change without changing what callers receive. Where the two carry the same
fields, `recast` moves one into the other through the wire format, and `mirror_mismatches` (run by the
tests over every such pair) says where they stopped agreeing, so a drift is found before it ships.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf.descriptor import Descriptor, EnumDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

__all__ = ["from_ms", "mirror_mismatches", "recast", "set_time", "stamp", "utcnow"]

M = TypeVar("M", bound=Message)


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds as a timezone-aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def set_time(target: Timestamp, moment: datetime | int | None) -> None:
    """Set `target` to `moment` (a datetime or epoch milliseconds); None or 0 ms leaves it unset."""
    if isinstance(moment, datetime):
        target.FromDatetime(moment)
    elif moment:
        target.FromMilliseconds(moment)


def stamp(moment: datetime | int) -> Timestamp:
    """`moment` (a datetime or epoch milliseconds) as a Timestamp."""
    target = Timestamp()
    set_time(target, moment)
    return target


def recast(message: Message, target: type[M]) -> M:
    """`message` as `target`, a message that mirrors it (same field names and numbers, see
    `mirror_mismatches`); fields `target` does not declare are dropped, not carried as unknown fields."""
    converted = target.FromString(message.SerializeToString())
    converted.DiscardUnknownFields()
    return converted


def mirror_mismatches(target: Descriptor, source: Descriptor) -> list[str]:
    """Where `target` fails to mirror `source`: every field of `target` must exist in `source` under the
    same number with the same type and label, nested messages and enums mirroring in turn. Empty when
    `recast(source message, target)` is exact."""
    problems: list[str] = []
    _compare(target, source, target.full_name, problems, set())
    return problems


def _compare(target: Descriptor, source: Descriptor, path: str, problems: list[str], seen: set[str]) -> None:
    if target.full_name in seen:
        return
    seen.add(target.full_name)
    by_number = {f.number: f for f in source.fields}
    for field in target.fields:
        where = f"{path}.{field.name}"
        theirs = by_number.get(field.number)
        if theirs is None or theirs.name != field.name:
            problems.append(f"{where}: no field {field.name} = {field.number} in {source.full_name}")
            continue
        if (field.type, field.is_repeated) != (theirs.type, theirs.is_repeated):
            problems.append(f"{where}: type or label differs from {theirs.full_name}")
        elif field.message_type is not None and theirs.message_type is not None:
            _compare(field.message_type, theirs.message_type, where, problems, seen)
        elif field.enum_type is not None and theirs.enum_type is not None:
            _compare_enum(field.enum_type, theirs.enum_type, where, problems)


def _compare_enum(target: EnumDescriptor, source: EnumDescriptor, path: str, problems: list[str]) -> None:
    theirs = {v.number: v.name for v in source.values}
    for value in target.values:
        if theirs.get(value.number) != value.name:
            problems.append(f"{path}: {value.name} = {value.number} is not in {source.full_name}")
