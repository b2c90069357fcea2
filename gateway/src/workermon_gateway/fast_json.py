"""The proto3 JSON mapping of reply messages, several times faster than `json_format.MessageToDict`.

`MessageToDict` walks every field through generic, per-value dispatch. Here each message type gets an
encoder built once from its descriptor: a table from field number to a function for that field's kind,
applied to what `ListFields()` returns (only the fields that are set, as the mapping prints them). The
output is the mapping `MessageToDict(message)` gives with lowerCamelCase names — int64 as strings, enums
by name (unknown numbers as numbers), bytes as base64, NaN/Infinity as strings, Timestamp and Duration as
their JSON strings, Struct as a JSON object — plus every repeated and map field present, empty when
unset (the gateway's rule, so clients never test for a missing list). `tests/gateway/test_fast_json.py`
checks it against `json_format` on every message type of the API, filled at random.

Extensions and `Any` are not used by the API: a message carrying them is passed to `json_format`.
"""

from __future__ import annotations

import base64
import functools
import math
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

Encode = Callable[[Any], Any]

_INT64 = {
    FieldDescriptor.CPPTYPE_INT64,
    FieldDescriptor.CPPTYPE_UINT64,
}
_STRING_WKT = {"google.protobuf.Duration", "google.protobuf.FieldMask"}
# The range a Timestamp's JSON form can show (0001-01-01 to 9999-12-31); outside it ToJsonString says why.
_MIN_SECONDS, _MAX_SECONDS = -62_135_596_800, 253_402_300_799
_EPOCH = date(1970, 1, 1)
_GENERIC = {"google.protobuf.Any"} | {
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
}


def to_json(message: Message) -> dict[str, Any]:
    """`message` in the proto3 JSON mapping, lowerCamelCase names, repeated and map fields always present."""
    encoded: dict[str, Any] = _message_encoder(message.DESCRIPTOR)(message)
    return encoded


def reference_json(message: Message) -> dict[str, Any]:
    """What `to_json` must give, the slow way: `json_format.MessageToDict`, then every repeated and map
    field present (the reference the tests and the gateway benchmark hold the fast path to)."""
    out = json_format.MessageToDict(message)
    _fill_lists(message, out)
    return out


def _fill_lists(message: Message, out: dict[str, Any]) -> None:
    for field in message.DESCRIPTOR.fields:
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        regular = field.message_type is not None and not field.message_type.full_name.startswith("google.")
        if field.is_repeated:
            items = out.setdefault(field.json_name, {} if is_map else [])
            if regular and not is_map:
                for item, rendered in zip(getattr(message, field.name), items, strict=True):
                    _fill_lists(item, rendered)
        elif regular and message.HasField(field.name):
            _fill_lists(getattr(message, field.name), out[field.json_name])


def _double(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _float32(value: float) -> Any:
    # A float32 widened to a double prints as its shortest float32 form, as json_format prints it.
    shown = _double(value)
    return type_checkers.ToShortestFloat(value) if isinstance(shown, float) else shown


def _enum(field: FieldDescriptor) -> Encode:
    enum = field.enum_type
    assert enum is not None
    names = {number: value.name for number, value in enum.values_by_number.items()}
    if enum.full_name == "google.protobuf.NullValue":
        return lambda _value: None
    return lambda value: names.get(value, value)


def _scalar(field: FieldDescriptor) -> Encode:
    """The encoder of one value of a field that is not a message."""
    cpp = field.cpp_type
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return _enum(field)
    if cpp in _INT64:
        return str
    if cpp == FieldDescriptor.CPPTYPE_FLOAT:
        return _float32
    if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
        return _double
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _bytes
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return bool
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return str
    return int  # int32, uint32 and their kin: JSON numbers


def _value(field: FieldDescriptor) -> Encode:
    """The encoder of one value of `field` (an element, for a repeated field)."""
    if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
        return _message_encoder(field.message_type)
    return _scalar(field)


def _field(field: FieldDescriptor) -> Encode:
    """The encoder of a field's whole value, as ListFields() gives it."""
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_encoder = _value(field.message_type.fields_by_name["value"])
        return lambda entries: {_map_key(key): value_encoder(entries[key]) for key in entries}
    one = _value(field)
    if field.is_repeated:
        return lambda values: [one(value) for value in values]
    return one


def _map_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


@functools.cache
def _message_encoder(descriptor: Descriptor) -> Encode:
    """The encoder of a message type (built once per type)."""
    name = descriptor.full_name
    if name == "google.protobuf.Timestamp":
        return _timestamp
    if name in _STRING_WKT:
        return lambda message: message.ToJsonString()
    if name == "google.protobuf.Struct":
        return _struct
    if name == "google.protobuf.Value":
        return _struct_value
    if name == "google.protobuf.ListValue":
        return _list_value
    if name in _GENERIC:
        return json_format.MessageToDict
    return _RegularEncoder(descriptor)


class _RegularEncoder:
    """A message type's fields: names, encoders, and the lists and maps always present."""

    def __init__(self, descriptor: Descriptor) -> None:
        self.names: dict[int, str] = {}
        self.encoders: dict[int, Encode] = {}
        self.always: list[tuple[str, type[list[Any]] | type[dict[str, Any]]]] = []
        # Filled on first use: a message type may contain itself.
        self._descriptor = descriptor
        self._ready = False

    def _build(self) -> None:
        for field in self._descriptor.fields:
            self.names[field.number] = field.json_name
            self.encoders[field.number] = _field(field)
            if field.is_repeated:
                is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
                self.always.append((field.json_name, dict if is_map else list))
        self._ready = True

    def __call__(self, message: Message) -> dict[str, Any]:
        if not self._ready:
            self._build()
        out: dict[str, Any] = {}
        names, encoders = self.names, self.encoders
        for field, value in message.ListFields():
            if field.is_extension:
                return json_format.MessageToDict(message)
            out[names[field.number]] = encoders[field.number](value)
        for json_name, empty in self.always:
            if json_name not in out:
                out[json_name] = empty()
        return out


def _timestamp(message: Any) -> str:
    """RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as Timestamp.ToJsonString writes it (which is
    several times slower: a timestamp is the commonest value in a page of jobs)."""
    seconds, nanos = message.seconds, message.nanos
    if not _MIN_SECONDS <= seconds <= _MAX_SECONDS or not 0 <= nanos < 1_000_000_000:
        return str(message.ToJsonString())
    minutes, second = divmod(seconds, 60)
    text = f"{_minute(minutes)}:{second:02d}"
    if not nanos:
        return text + "Z"
    if not nanos % 1_000_000:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if not nanos % 1_000:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


@functools.lru_cache(maxsize=8192)
def _minute(minutes: int) -> str:
    """YYYY-MM-DDTHH:MM of a minute counted from the epoch (a page's jobs share a handful of minutes)."""
    day, minute = divmod(minutes, 1_440)
    hour, minute = divmod(minute, 60)
    return f"{(_EPOCH + timedelta(days=day)).strftime('%Y-%m-%d').zfill(10)}T{hour:02d}:{minute:02d}"


def _struct(message: Message) -> dict[str, Any]:
    return {key: _struct_value(value) for key, value in message.fields.items()}  # type: ignore[attr-defined]


def _list_value(message: Message) -> list[Any]:
    return [_struct_value(value) for value in message.values]  # type: ignore[attr-defined]


def _struct_value(message: Message) -> Any:
    kind = message.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        number = message.number_value  # type: ignore[attr-defined]
        if math.isinf(number) or math.isnan(number):
            raise ValueError(f"Fail to serialize {number} for Value.number_value")
        return number
    if kind == "struct_value":
        return _struct(message.struct_value)  # type: ignore[attr-defined]
    if kind == "list_value":
        return _list_value(message.list_value)  # type: ignore[attr-defined]
    return getattr(message, kind)
