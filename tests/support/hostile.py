"""Hypothesis strategies for hostile protobuf messages, built by walking a message's descriptor.

Every field may be left unset or set to a value chosen to break careless code: strings empty, huge,
of control characters or of any Unicode; integers negative or at the limits of their type; enums out of
range; timestamps and durations outside what a datetime can hold; repeated fields and maps long; nested
messages a few levels deep. `names` are strings worth drawing often (the test's own queue and worker
names), so that validation is passed now and then and the code behind it runs too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)
# Timestamp seconds a datetime cannot hold, or that are just outside the valid range, or 2^62.
EDGE_SECONDS = (
    0,
    -1,
    1,
    2**62,
    -(2**62),
    INT64[1],
    INT64[0],
    253402300799,
    253402300800,
    -62135596800,
    -62135596801,
)
EDGE_NANOS = (0, -1, 999_999_999, 1_000_000_000, INT32[1], INT32[0])
LONG_LIST = (200, 3000)
# Fields that name something: drawn from the known names half of the time.
NAMING_FIELDS = frozenset({"queue", "queues", "confirm", "worker_id", "job_id", "entity_id", "instance_id"})

_RANGES = {
    FieldDescriptor.TYPE_INT32: INT32,
    FieldDescriptor.TYPE_SINT32: INT32,
    FieldDescriptor.TYPE_SFIXED32: INT32,
    FieldDescriptor.TYPE_INT64: INT64,
    FieldDescriptor.TYPE_SINT64: INT64,
    FieldDescriptor.TYPE_SFIXED64: INT64,
    FieldDescriptor.TYPE_UINT32: UINT32,
    FieldDescriptor.TYPE_FIXED32: UINT32,
    FieldDescriptor.TYPE_UINT64: UINT64,
    FieldDescriptor.TYPE_FIXED64: UINT64,
}


def hostile_text(names: Sequence[str] = (), *, small: bool = False) -> st.SearchStrategy[str]:
    """Strings a caller should not be trusted with (short ones only when `small`)."""
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(["", " ", "a", "\x00", "../x", "%s%n", "*", "a:b", "{x}", "-1", "0", "\u202e"]),
        st.text(max_size=30),
        st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=10),
        st.text(alphabet="abcdef-_.:0123456789", min_size=1, max_size=24),
    ]
    if names:
        options.append(st.sampled_from(list(names)))
    if not small:
        options += [
            st.integers(201, 300_000).map(lambda n: "q" * n),
            # JSON nested far deeper than any parser's recursion limit.
            st.integers(900, 200_000).map(lambda n: "[" * n + "]" * n),
            st.integers(900, 20_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
            st.integers(1, 20_000).map(lambda n: "\u00e9\U0001f600" * n),
        ]
    return st.one_of(options)


def _integers(kind: int) -> st.SearchStrategy[int]:
    low, high = _RANGES[kind]
    edges = sorted(
        {v for v in (low, high, -1, 0, 1, 2, 100, 999, 10**6, 10**9, high - 1) if low <= v <= high}
    )
    return st.one_of(
        st.sampled_from(edges), st.integers(max(low, -3), min(high, 300)), st.integers(low, high)
    )


def _scalar(field: FieldDescriptor, names: Sequence[str], small: bool) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if names and field.name in NAMING_FIELDS:
            # Half the time a name that exists, so the code past the existence checks runs too.
            return st.one_of(st.sampled_from(list(names)), hostile_text(names, small=small))
        return hostile_text(names, small=small)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64 if small else 4096)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        valid = sorted(v.number for v in field.enum_type.values)
        return st.one_of(st.sampled_from(valid), st.sampled_from([-1, 999, *INT32]), st.integers(*INT32))
    return _integers(kind)


def _time_like(cls: type[Message]) -> st.SearchStrategy[Message]:
    seconds = st.one_of(
        st.sampled_from(EDGE_SECONDS),
        st.integers(1_600_000_000, 2_000_000_000),
        st.integers(-100_000, 100_000),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.just(0), st.sampled_from(EDGE_NANOS), st.integers(*INT32))
    return st.builds(lambda s, n: cls(seconds=s, nanos=n), seconds, nanos)


def _nested_dict(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        out = {"n": out}
    return out


def _struct(cls: type[Message]) -> st.SearchStrategy[Message]:
    json_values = st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | hostile_text(small=True),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(hostile_text(small=True), inner, max_size=3)
        ),
        max_leaves=8,
    )
    documents = st.one_of(
        st.dictionaries(hostile_text(small=True), json_values, max_size=4),
        st.integers(20, 60).map(_nested_dict),
    )

    def build(document: dict[str, Any]) -> Message:
        message = cls()
        message.update(document)  # type: ignore[attr-defined]
        return message

    return documents.map(build)


def message_strategy(
    descriptor: Descriptor, names: Sequence[str] = (), *, depth: int = 0, small: bool = False
) -> st.SearchStrategy[Message]:
    """Hostile instances of the message `descriptor` describes."""
    cls = cast(type[Message], GetMessageClass(descriptor))
    full = descriptor.full_name
    if full in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return _time_like(cls)
    if full == "google.protobuf.Struct":
        return _struct(cls)
    setters: dict[str, st.SearchStrategy[Callable[[Message], None]]] = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE and depth >= 3:
            continue
        setters[field.name] = st.one_of(st.none(), _setter(field, names, depth, small))

    def build(chosen: dict[str, Callable[[Message], None] | None]) -> Message:
        message = cls()
        for setter in chosen.values():
            if setter is not None:
                setter(message)
        return message

    return st.fixed_dictionaries(setters).map(build)


def _setter(
    field: FieldDescriptor, names: Sequence[str], depth: int, small: bool
) -> st.SearchStrategy[Callable[[Message], None]]:
    """A strategy of functions that set `field` on a message to a hostile value."""
    name = field.name
    message_type = field.message_type
    if message_type is not None and message_type.GetOptions().map_entry:
        key_field = message_type.fields_by_name["key"]
        value_field = message_type.fields_by_name["value"]
        keys = _scalar(key_field, names, True)
        values = _element(value_field, names, depth + 1, True)
        pairs = st.one_of(
            st.lists(st.tuples(keys, values), max_size=4),
            st.tuples(st.integers(*LONG_LIST), values).map(
                lambda t: [(_nth_key(key_field, i), t[1]) for i in range(t[0])]
            ),
        )
        return pairs.map(lambda items: lambda m: _fill_map(getattr(m, name), value_field, items))
    element = _element(field, names, depth + 1, small)
    if field.is_repeated:
        short = _element(field, names, depth + 1, True)
        lists = st.one_of(
            st.lists(element, max_size=3),
            st.tuples(short, st.integers(*LONG_LIST)).map(lambda t: [t[0]] * t[1]),
        )
        return lists.map(lambda items: lambda m: getattr(m, name).extend(items))
    if message_type is not None:
        return element.map(lambda value: lambda m: getattr(m, name).CopyFrom(value))
    return element.map(lambda value: lambda m: setattr(m, name, value))


def _element(field: FieldDescriptor, names: Sequence[str], depth: int, small: bool) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return message_strategy(field.message_type, names, depth=depth, small=small)
    return _scalar(field, names, small)


def _nth_key(field: FieldDescriptor, i: int) -> Any:
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"k{i}"
    if field.type == FieldDescriptor.TYPE_BOOL:
        return bool(i % 2)
    return i


def _fill_map(target: Any, value_field: FieldDescriptor, items: list[tuple[Any, Any]]) -> None:
    for key, value in items:
        if value_field.type == FieldDescriptor.TYPE_MESSAGE:
            target[key].CopyFrom(value)
        else:
            target[key] = value
