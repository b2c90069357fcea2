"""HTTP to proto and back, per google.api.http (AIP-127): path templates, query parameters, bodies, JSON.

Responses follow the proto3 JSON mapping with lowerCamelCase names and, as that mapping says, leave out
fields at their default values (a missing number is 0, a missing flag false), with one exception that
makes the JSON easier to use: repeated fields are always present, as [] when empty, so a client can
iterate without checking. Fields with presence (`optional`, messages such as timestamps) are absent when
unset, which the protos give a meaning ("absent before the first collection").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from workermon_core import validation
from workermon_core.errors import InvalidArgument

from . import fast_json

# Well-known types whose JSON form is a single string or scalar: settable from one query parameter.
SCALAR_WKT = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
    }
)
_BOOL_TYPES = (FieldDescriptor.TYPE_BOOL,)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A google.api.http path template compiled to a regex over the raw (still percent-encoded) path."""

    template: str
    regex: re.Pattern[str]
    variables: tuple[str, ...]
    # Literal characters outside variables: the more, the more specific (`/v1/workers:summary` beats a
    # template that would take `workers:summary` as a variable's value).
    specificity: int

    @classmethod
    def parse(cls, template: str) -> PathTemplate:
        """Compile `/v1/queues/{queue}/jobs/{job_id}:retry` (and `{name=**}` for several segments)."""
        if not template.startswith("/"):
            raise ValueError(f"path template {template!r} must start with /")
        pattern: list[str] = []
        variables: list[str] = []
        literal = 0
        pos = 0
        for match in _VARIABLE.finditer(template):
            text = template[pos : match.start()]
            pattern.append(re.escape(text))
            literal += len(text)
            name, sub = match.group(1), match.group(2)
            variables.append(name)
            group = f"v{len(variables) - 1}"
            # `**` spans segments; anything else (`*`, or no sub-template) is one segment.
            body = ".+" if sub is not None and "**" in sub else "[^/]+"
            pattern.append(f"(?P<{group}>{body})")
            pos = match.end()
        tail = template[pos:]
        pattern.append(re.escape(tail))
        literal += len(tail)
        return cls(template, re.compile("^" + "".join(pattern) + "$"), tuple(variables), literal)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Variable values (percent-decoded) when `raw_path` fits, else None."""
        found = self.regex.match(raw_path)
        if found is None:
            return None
        return {name: unquote(found.group(f"v{i}")) for i, name in enumerate(self.variables)}

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: `/v1/queues/{queue}:pause`."""
        return _VARIABLE.sub(lambda m: "{" + m.group(1) + "}", self.template)


def descriptor_of(message: Message) -> Descriptor:
    """The message's descriptor (the stubs type it as a union of the Python and upb classes)."""
    return cast(Descriptor, message.DESCRIPTOR)


def resolve_field(descriptor: Descriptor, dotted: str) -> list[FieldDescriptor]:
    """The fields along `a.b.c` (each part the proto name or its JSON name); KeyError if none."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = descriptor
    for part in dotted.split("."):
        if current is None:
            raise KeyError(dotted)
        field = current.fields_by_name.get(part) or _by_json_name(current, part)
        if field is None:
            raise KeyError(dotted)
        chain.append(field)
        current = field.message_type if _is_plain_message(field) and not _is_repeated(field) else None
    return chain


def _by_json_name(descriptor: Descriptor, name: str) -> FieldDescriptor | None:
    for field in descriptor.fields:
        if field.json_name == name:
            return field
    return None


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _is_map(field: FieldDescriptor) -> bool:
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type is not None
        and field.message_type.GetOptions().map_entry
    )


def _is_plain_message(field: FieldDescriptor) -> bool:
    """A message field other than a well-known type: its fields are addressed with dots."""
    return bool(
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type is not None
        and not field.message_type.full_name.startswith("google.protobuf.")
    )


def is_query_leaf(field: FieldDescriptor) -> bool:
    """Whether one query parameter can set the field (scalars, enums, single-string well-known types)."""
    if _is_map(field):
        return False
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return field.message_type is not None and field.message_type.full_name in SCALAR_WKT
    return True


def enum_value_name(enum: EnumDescriptor, text: str) -> str | None:
    """The full value name for `JOB_STATE_FAILED`, `failed`, `Failed`, or a number; None if none fits."""
    upper = text.strip().upper()
    if upper.lstrip("-").isdigit():
        by_number = enum.values_by_number.get(int(upper))
        return by_number.name if by_number is not None else None
    if upper in enum.values_by_name:
        return upper
    prefix = enum_prefix(enum)
    if prefix and prefix + upper in enum.values_by_name:
        return prefix + upper
    return None


def enum_prefix(enum: EnumDescriptor) -> str:
    """`JOB_STATE_` for JobState: what its value names share (taken from the *_UNSPECIFIED value)."""
    for value in enum.values:
        if value.name.endswith("_UNSPECIFIED"):
            return value.name[: -len("UNSPECIFIED")]
    names = [v.name for v in enum.values]
    common = names[0] if names else ""
    for name in names[1:]:
        while not name.startswith(common):
            common = common[:-1]
    return common[: common.rfind("_") + 1] if "_" in common else ""


def _scalar_json(field: FieldDescriptor, text: str, param: str) -> Any:
    """One query value as the JSON value json_format expects for the field."""
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        name = enum_value_name(field.enum_type, text)
        if name is None:
            choices = ", ".join(
                v.name.removeprefix(enum_prefix(field.enum_type)).lower()
                for v in field.enum_type.values
                if v.number != 0
            )
            raise InvalidArgument(param, f"{text!r} is not one of: {choices}")
        return name
    if field.type in _BOOL_TYPES or (
        field.message_type is not None and field.message_type.full_name == "google.protobuf.BoolValue"
    ):
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise InvalidArgument(param, f"{text!r} is not a boolean (true or false)")
    return text


def _nest(chain: Sequence[FieldDescriptor], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {chain[-1].name: value}
    for field in reversed(chain[:-1]):
        out = {field.name: out}
    return out


def apply_query(
    message: Message,
    params: Sequence[tuple[str, str]],
    *,
    bound: frozenset[str] = frozenset(),
) -> None:
    """Set fields from query parameters; InvalidArgument naming the parameter when one does not fit.

    Repeated fields take repeated parameters and comma-separated values (`states=failed,completed`).
    """
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        grouped.setdefault(key, []).append(value)
    descriptor = descriptor_of(message)
    for key, values in grouped.items():
        try:
            chain = resolve_field(descriptor, key)
        except KeyError:
            raise InvalidArgument(key, "no such parameter", reason="UNKNOWN_PARAMETER") from None
        leaf = chain[-1]
        if ".".join(f.name for f in chain) in bound:
            raise InvalidArgument(key, "is set by the path, not by a query parameter")
        if not is_query_leaf(leaf):
            raise InvalidArgument(key, "is a message; set its fields with dotted names")
        if _is_repeated(leaf):
            items = [item for value in values for item in value.split(",") if item != ""]
            value_json: Any = [_scalar_json(leaf, item, key) for item in items]
        else:
            if len(values) > 1:
                raise InvalidArgument(key, "given more than once")
            value_json = _scalar_json(leaf, values[0], key)
        part = type(message)()
        try:
            json_format.ParseDict(_nest(chain, value_json), part, ignore_unknown_fields=False)
        except json_format.ParseError as exc:
            raise InvalidArgument(key, _parse_problem(str(exc))) from None
        message.MergeFrom(part)


def apply_path(message: Message, variables: Mapping[str, str]) -> None:
    """Set the fields a path template bound (`queue`, `job_id`; dotted names for nested fields)."""
    for name, text in variables.items():
        chain = resolve_field(descriptor_of(message), name)
        leaf = chain[-1]
        part = type(message)()
        try:
            json_format.ParseDict(_nest(chain, _scalar_json(leaf, text, name)), part)
        except json_format.ParseError as exc:
            raise InvalidArgument(name, _parse_problem(str(exc))) from None
        _clear(message, chain)
        message.MergeFrom(part)


def _clear(message: Message, chain: Sequence[FieldDescriptor]) -> None:
    target = message
    for field in chain[:-1]:
        target = getattr(target, field.name)
    target.ClearField(chain[-1].name)


def apply_body(message: Message, raw: bytes, body: str) -> None:
    """Parse the JSON body into the message (`*`) or into the field the rule names."""
    if not raw.strip():
        return
    try:
        # The size is bounded by the router (MAX_BODY_BYTES); the nesting here.
        data = validation.json_document(raw, "body", max_bytes=len(raw))
    except InvalidArgument as exc:
        raise InvalidArgument("body", exc.description, reason="INVALID_JSON") from None
    target = message
    if body != "*":
        chain = resolve_field(descriptor_of(message), body)
        data = _nest(chain, data)
    if not isinstance(data, dict):
        raise InvalidArgument("body", "must be a JSON object", reason="INVALID_JSON")
    part = type(target)()
    try:
        json_format.ParseDict(data, part, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        text = str(exc)
        raise InvalidArgument(_parse_field(text) or "body", _parse_problem(text)) from None
    except (ValueError, OverflowError) as exc:
        # What json_format lets through unwrapped, e.g. an enum number out of the int32 range.
        raise InvalidArgument("body", str(exc)) from None
    target.MergeFrom(part)


_NO_FIELD = re.compile(r'has no field named "([^"]+)"')
_FAILED_FIELD = re.compile(r"Failed to parse ([A-Za-z0-9_]+) field")


def _parse_field(text: str) -> str | None:
    """The field json_format complained about, when its message names one."""
    for pattern in (_NO_FIELD, _FAILED_FIELD):
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None


def _parse_problem(text: str) -> str:
    """json_format's message without the parser's own location noise."""
    return text.split(" at ", 1)[0] if " at " in text else text


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON form with lowerCamelCase names, repeated fields always present (see module doc);
    encoded by `fast_json`, which gives what json_format does, faster."""
    return fast_json.to_json(message)
