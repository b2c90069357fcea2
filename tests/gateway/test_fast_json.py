"""The gateway's JSON encoder gives exactly what `json_format.MessageToDict` gives (plus repeated and map
fields always present), for every message type of the API filled at random, byte for byte once dumped."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from workermon.collector.v1 import collector_service_pb2
from workermon.heartbeat.v1 import heartbeat_service_pb2
from workermon.incidents.v1 import incident_service_pb2
from workermon.monitor.v1 import monitor_service_pb2
from workermon_gateway.fast_json import reference_json, to_json

MODULES = (collector_service_pb2, heartbeat_service_pb2, incident_service_pb2, monitor_service_pb2)
SAMPLES_PER_TYPE = 25
MAX_DEPTH = 4


def _types(descriptor: Descriptor) -> Iterator[Descriptor]:
    if not descriptor.GetOptions().map_entry:
        yield descriptor
    for nested in descriptor.nested_types:
        yield from _types(nested)


# Streamed to HTTP as their raw body (google.api.HttpBody), never encoded as JSON by the gateway.
RAW_BODIES = {"workermon.monitor.v1.ExportJobsResponse"}


def _api_types() -> list[Descriptor]:
    return [
        found
        for module in MODULES
        for top in module.DESCRIPTOR.message_types_by_name.values()
        for found in _types(top)
        if found.full_name not in RAW_BODIES
    ]


class Filler:
    """Sets fields to random values, edge cases included (int64 extremes, NaN, unknown enum numbers)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def fill(self, message: Message, depth: int = 0) -> Message:
        for field in message.DESCRIPTOR.fields:
            if self.rng.random() < 0.3:
                continue  # left unset
            name = field.json_name  # noqa: F841 - kept for debugging a failing seed
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                self._fill_map(getattr(message, field.name), field.message_type, depth)
            elif field.is_repeated:
                self._fill_repeated(getattr(message, field.name), field, depth)
            elif field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                if depth < MAX_DEPTH:
                    self._message(getattr(message, field.name), depth + 1)
            else:
                setattr(message, field.name, self.scalar(field))
        return message

    def _fill_map(self, container: Any, entry: Descriptor, depth: int) -> None:
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for _ in range(self.rng.randint(0, 3)):
            key = self.scalar(key_field)
            if value_field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                self._message(container[key], depth + 1)
            else:
                container[key] = self.scalar(value_field)

    def _fill_repeated(self, container: Any, field: FieldDescriptor, depth: int) -> None:
        for _ in range(self.rng.randint(0, 3)):
            if field.cpp_type == FieldDescriptor.CPPTYPE_MESSAGE:
                if depth < MAX_DEPTH:
                    self._message(container.add(), depth + 1)
            else:
                container.append(self.scalar(field))

    def _message(self, message: Message, depth: int) -> None:
        name = message.DESCRIPTOR.full_name
        if name == "google.protobuf.Timestamp":
            edges = [-62_135_596_800, -30_610_224_001, -1, 0, 253_402_300_799]  # 0001, 0999, 1969, 1970, 9999
            seconds = self.rng.choice([*edges, self.rng.randint(0, 253_402_300_799)])
            message.seconds = seconds  # type: ignore[attr-defined]
            message.nanos = self.rng.choice([0, 5_000_000, 123_456_000, 987_654_321])  # type: ignore[attr-defined]
        elif name == "google.protobuf.Duration":
            seconds = self.rng.randint(0, 10**9)
            message.seconds = seconds  # type: ignore[attr-defined]
            message.nanos = self.rng.choice([0, 500_000_000, 1_000, 7])  # type: ignore[attr-defined]
        elif name == "google.protobuf.Struct":
            json_format.ParseDict(self._json(depth), message)
        else:
            self.fill(message, depth)

    def _json(self, depth: int) -> dict[str, Any]:
        values: list[Any] = [None, True, "text ✓", 0, 1.5, -7, [1, "a", None]]
        out: dict[str, Any] = {f"k{i}": self.rng.choice(values) for i in range(self.rng.randint(0, 4))}
        if depth < MAX_DEPTH and self.rng.random() < 0.5:
            out["nested"] = self._json(depth + 1)
        return out

    def scalar(self, field: FieldDescriptor) -> Any:
        cpp, rng = field.cpp_type, self.rng
        if cpp == FieldDescriptor.CPPTYPE_ENUM:
            numbers = list(field.enum_type.values_by_number)
            return rng.choice([*numbers, 999]) if not field.enum_type.is_closed else rng.choice(numbers)
        if cpp == FieldDescriptor.CPPTYPE_BOOL:
            return rng.random() < 0.5
        if cpp == FieldDescriptor.CPPTYPE_STRING:
            if field.type == FieldDescriptor.TYPE_BYTES:
                return rng.randbytes(rng.randint(0, 9))
            return rng.choice(["", "emails", "ünïcode ✓", 'quote " and \\ backslash', "x" * 40])
        if cpp == FieldDescriptor.CPPTYPE_DOUBLE:
            return rng.choice([0.0, -0.0, 1.5, -2.25e-7, 1e300, math.inf, -math.inf, math.nan, 3.0])
        if cpp == FieldDescriptor.CPPTYPE_INT64:
            return rng.choice([0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1])
        if cpp == FieldDescriptor.CPPTYPE_UINT64:
            return rng.choice([0, 1, 2**64 - 1])
        if cpp == FieldDescriptor.CPPTYPE_INT32:
            return rng.choice([0, 1, -1, 2**31 - 1, -(2**31)])
        if cpp == FieldDescriptor.CPPTYPE_UINT32:
            return rng.choice([0, 1, 2**32 - 1])
        raise AssertionError(f"no random value for {field.full_name}")


@pytest.mark.parametrize("descriptor", _api_types(), ids=lambda d: d.full_name)
def test_the_same_json_as_json_format(descriptor: Descriptor) -> None:
    cls = GetMessageClass(descriptor)
    for seed in range(SAMPLES_PER_TYPE):
        message = Filler(seed).fill(cls())
        expected = json.dumps(reference_json(message))
        assert json.dumps(to_json(message)) == expected, (descriptor.full_name, seed)


def test_an_empty_message_has_its_lists_and_maps() -> None:
    empty = to_json(monitor_service_pb2.ListQueuesResponse())
    assert empty == reference_json(monitor_service_pb2.ListQueuesResponse())
    assert any(value == [] for value in empty.values())
