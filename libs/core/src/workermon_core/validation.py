"""Input limits every service shares; a bad value is INVALID_ARGUMENT naming the field and the limit.

This is the one place the limits live (the README's "Input limits" lists them): each servicer calls
these checkers at its edge rather than carrying its own copy. Every free-text field a caller controls is
bounded, enums must be values the proto defines, timestamps and durations must be ones protobuf (and a
datetime) can represent, and JSON a caller sends is bounded in size and nesting, so that no request can
make a service fail with INTERNAL, fill a store with megabytes, or blow the parser's stack.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.descriptor import EnumDescriptor

from .errors import InvalidArgument

# --- the limits -----------------------------------------------------------------------------------

MAX_NAME = 200
"""Queue names, job names, worker ids, and filters over them (name_prefix, queue, hostname...)."""
MAX_JOB_ID = 512
"""Job ids (BullMQ ids are strings of the producer's choosing)."""
MAX_DEDUPLICATION_ID = 512
"""BullMQ deduplication ids (the producer's choosing too; the id is part of a Redis key)."""
MAX_HOSTNAME = 255
"""Host names (RFC 1035's limit)."""
MAX_FILTER = 200
"""Other free-text filters: failure category, audit actor and entity type."""
MAX_REASON = 500
"""Reasons and notes written by people (pause reason, incident note, goodbye reason...)."""
MAX_COMMENT = 2000
"""Longer texts people write: a silence's comment, an incident's resolution note."""
MAX_PAGE_TOKEN = 1024
"""Page tokens: the services issue them far shorter."""
MAX_NAMES_PER_CALL = 1000
"""Queue names in one request (CollectNow, SummarizeQueues, Evaluate, GetQueueTimings)."""
MAX_JSON_BYTES = 512 * 1024
"""JSON a caller sends as a document (AddJob's data): its UTF-8 size."""
MAX_JSON_DEPTH = 64
"""Nesting of JSON a caller sends (arrays and objects inside each other), job data and HTTP bodies."""
MAX_AUDIT_VALUE_CHARS = 1000
"""The audit log stores each parameter value, and each text of an entry, cut to this many characters."""
MAX_AUDIT_KEYS = 32
"""The audit log stores at most this many parameters (and result fields) of one entry."""
MAX_CHILDREN_REMOVE = 10_000
"""Most pending children one RemovePendingChildren removes: BullMQ's script does them all in one call,
which blocks Redis meanwhile."""
MAX_CHILD_VALUE_BYTES = 1024
"""A child's return value or failure reason, as a parent recorded it, is cut to this in listings."""
MAX_TEMPLATE_BYTES = 4096
"""A job scheduler's template data is cut to this in listings."""

# What one worker's beat may carry (HeartbeatService; the SDK keeps to the same numbers).
MAX_QUEUES = 64
MAX_LABELS = 32
MAX_ACTIVE_JOB_IDS = 1000
MAX_GAUGES = 32
MAX_REDIS_CLIENTS = 16
MAX_ACKS = 100
MAX_REPORT_BYTES = 1024 * 1024
MAX_TIMINGS = 64
MAX_BINS = 4096

# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_TS_MIN_SECONDS = -62_135_596_800
_TS_MAX_SECONDS = 253_402_300_799
# google.protobuf.Duration's range: about +-10,000 years.
_DURATION_MAX_SECONDS = 315_576_000_000
_NANOS = 1_000_000_000

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WORKER_ID_RE = re.compile(r"^[A-Za-z0-9._:@/\-]{1,200}$")


# --- text -----------------------------------------------------------------------------------------


def text(value: str, field: str, limit: int, *, required: bool = False, control: bool = True) -> str:
    """A string of at most `limit` characters and no NUL (no PostgreSQL text column holds one);
    `required` refuses empty, `control=False` refuses every control character (for names)."""
    if required and not value:
        raise InvalidArgument(field, "is required")
    if len(value) > limit:
        raise InvalidArgument(field, f"must be at most {limit} characters (got {len(value)})")
    if not control and _CONTROL.search(value):
        raise InvalidArgument(field, "must not contain control characters")
    if "\x00" in value:
        raise InvalidArgument(field, "must not contain NUL characters")
    return value


def reason(value: str, field: str = "reason") -> str:
    """A reason or note a person writes: at most MAX_REASON characters."""
    return text(value, field, MAX_REASON)


def queue_name(value: str, field: str) -> str:
    """A queue name: 1-200 characters with no control characters."""
    if not value or len(value) > MAX_NAME or _CONTROL.search(value):
        raise InvalidArgument(field, f"must be 1-{MAX_NAME} characters with no control characters")
    return value


def optional_queue_name(value: str, field: str) -> str:
    """A queue filter: empty (no filter) or a queue name."""
    return queue_name(value, field) if value else value


def queue_names(values: Any, field: str, *, required: bool = False) -> list[str]:
    """A list of queue names: at most MAX_NAMES_PER_CALL, each one a queue name."""
    names = list(values)
    if required and not names:
        raise InvalidArgument(field, f"name 1 to {MAX_NAMES_PER_CALL:,} queues")
    if len(names) > MAX_NAMES_PER_CALL:
        raise InvalidArgument(field, f"at most {MAX_NAMES_PER_CALL:,} queues per call (got {len(names):,})")
    for i, name in enumerate(names):
        queue_name(name, f"{field}[{i}]")
    return names


def job_id(value: str, field: str = "job_id", *, required: bool = True) -> str:
    """A job id: at most MAX_JOB_ID characters, with no control characters."""
    return text(value, field, MAX_JOB_ID, required=required, control=False)


def worker_id(value: str, field: str = "worker_id") -> str:
    """A worker id: 1-200 characters of letters, digits and . _ : @ / -."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not _WORKER_ID_RE.match(value):
        raise InvalidArgument(field, f"must be 1-{MAX_NAME} characters of letters, digits and . _ : @ / -")
    return value


def page_token(value: str, field: str = "page_token") -> str:
    """A page token: at most MAX_PAGE_TOKEN characters (what the services issue is far shorter)."""
    return text(value, field, MAX_PAGE_TOKEN)


# --- enums ----------------------------------------------------------------------------------------


def enum_value(value: int, enum: EnumDescriptor, field: str, *, unspecified: bool = True) -> int:
    """A value the proto enum (`pb.JobState.DESCRIPTOR`) defines; UNSPECIFIED, the filter "any",
    only when `unspecified`."""
    if value in enum.values_by_number and (unspecified or value != 0):
        return value
    prefix = _enum_prefix(enum)
    names = ", ".join(v.name.removeprefix(prefix) for v in enum.values if v.number != 0)
    raise InvalidArgument(field, f"unknown value {value}; must be one of {names}")


def enum_label(value: int, enum: EnumDescriptor) -> str:
    """The value's name, or its number for a value the proto does not define (for audit records)."""
    found = enum.values_by_number.get(value)
    return str(found.name) if found is not None else str(value)


def _enum_prefix(enum: EnumDescriptor) -> str:
    for v in enum.values:
        if v.number == 0 and v.name.endswith("UNSPECIFIED"):
            return str(v.name[: -len("UNSPECIFIED")])
    return ""


# --- time -----------------------------------------------------------------------------------------


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(value: timestamp_pb2.Timestamp, field: str, *, earliest: datetime | None = None) -> datetime:
    """An aware UTC datetime from a Timestamp inside protobuf's range (years 1 to 9999), and not
    before `earliest` when given (for a moment the service computes windows back from)."""
    if not _TS_MIN_SECONDS <= value.seconds <= _TS_MAX_SECONDS:
        raise InvalidArgument(field, "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z")
    if not 0 <= value.nanos < _NANOS:
        raise InvalidArgument(field, "nanos must be between 0 and 999,999,999")
    moment = value.ToDatetime(tzinfo=UTC)
    if earliest is not None and moment < earliest:
        raise InvalidArgument(field, f"must not be before {earliest.isoformat()}")
    return moment


def timestamp_ms(value: timestamp_pb2.Timestamp, field: str) -> int:
    """A valid Timestamp in milliseconds since the epoch."""
    timestamp(value, field)
    return int(value.ToMilliseconds())


def duration(
    value: duration_pb2.Duration,
    field: str,
    *,
    minimum: timedelta | None = None,
    maximum: timedelta | None = None,
) -> timedelta:
    """A timedelta from a Duration inside protobuf's range, and within [minimum, maximum] when given."""
    if not -_DURATION_MAX_SECONDS <= value.seconds <= _DURATION_MAX_SECONDS:
        raise InvalidArgument(field, "must be within +-315,576,000,000 seconds")
    mixed_signs = value.seconds and value.nanos and (value.seconds > 0) != (value.nanos > 0)
    if not -_NANOS < value.nanos < _NANOS or mixed_signs:
        raise InvalidArgument(field, "nanos must be within +-999,999,999 with the sign of seconds")
    # Within protobuf's range a timedelta cannot overflow (it holds 999,999,999 days).
    delta = timedelta(seconds=value.seconds, microseconds=int(value.nanos / 1000))
    if minimum is not None and delta < minimum:
        raise InvalidArgument(field, f"must be at least {_seconds(minimum)}")
    if maximum is not None and delta > maximum:
        raise InvalidArgument(field, f"must be at most {_seconds(maximum)}")
    return delta


def raw_ms(value: duration_pb2.Duration | timestamp_pb2.Timestamp) -> int:
    """Milliseconds as sent, valid or not (for recording what a caller asked before it is checked)."""
    return int(value.seconds) * 1000 + int(value.nanos) // 1_000_000


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} seconds"


# --- JSON -----------------------------------------------------------------------------------------


def json_document(
    raw: str | bytes, field: str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> Any:
    """Parse JSON a caller sent: at most `max_bytes` (UTF-8) and `max_depth` levels of nesting."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(field, f"must be at most {max_bytes:,} bytes of JSON (got {size:,})")
    try:
        value = json.loads(raw)
    except RecursionError:
        # The parser's own stack limit (about a thousand levels) is far past ours: same answer.
        raise InvalidArgument(field, f"JSON must nest at most {max_depth} levels deep") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(field, f"is not valid JSON: {exc}") from None
    if json_depth(value) > max_depth:
        raise InvalidArgument(field, f"JSON must nest at most {max_depth} levels deep")
    return value


def json_depth(value: Any) -> int:
    """How deeply arrays and objects nest in a parsed JSON value (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


# --- what the audit log keeps -----------------------------------------------------------------------


def bounded_text(value: str, limit: int = MAX_AUDIT_VALUE_CHARS) -> str:
    """`value` cut to `limit` characters, saying how much was cut, with any NUL replaced by U+FFFD
    (what a caller sent is recorded even when refused, and no PostgreSQL text column holds a NUL)."""
    value = value.replace("\x00", "\ufffd")
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... [truncated: {len(value):,} characters]"


def bounded_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A record's fields with each text cut to MAX_AUDIT_VALUE_CHARS and at most MAX_AUDIT_KEYS keys;
    `_truncated` says what was cut, so a reader knows the record is not the whole request."""
    out: dict[str, Any] = {}
    cut: list[str] = []
    for i, (key, value) in enumerate(fields.items()):
        if i >= MAX_AUDIT_KEYS:
            out["_dropped_keys"] = len(fields) - MAX_AUDIT_KEYS
            break
        name = bounded_text(str(key), 100)
        kept = _bounded_value(value)
        if kept is not value or name != key:
            cut.append(name)
        out[name] = kept
    if cut or "_dropped_keys" in out:
        out["_truncated"] = cut
    return out


def _bounded_value(value: Any) -> Any:
    """A scalar kept as is (text cut); a nested list or object kept only as its bounded JSON text."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return bounded_text(value) if len(value) > MAX_AUDIT_VALUE_CHARS else value
    try:
        encoded = json.dumps(value, separators=(",", ":"), default=str)
    except (RecursionError, ValueError, TypeError):
        return "[not representable]"
    if len(encoded) <= MAX_AUDIT_VALUE_CHARS and json_depth(value) <= 8:
        return value
    return bounded_text(encoded)
