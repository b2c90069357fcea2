"""The alerting configuration as a document: rule thresholds, channels and routes, one JSON object.

    {"defaults": {<every RuleThresholds field>},
     "overrides": [{"queue_glob": "pay*", "worker_labels": {}, "thresholds": {<fields set>}}],
     "channels": [<channel objects, exactly the WORKERMON_NOTIFY_CHANNELS format>],
     "routes": [{"name", "types", "severities", "queue_glob", "worker_labels", "channels",
                 "continue_matching", "group_wait_seconds", "escalations": [{"after_minutes", "channels"}]}]}

This module checks a document (every refusal names the field in the proto's terms, "config.channels[2]
.smtp.host"), turns it into what the engine and the notifier use (a RuleBook, Channels, Routes), and
converts it to and from the proto's AlertingConfig. Channels are parsed by notify/channels.py, so a
channel type added there is accepted here as it is. Secrets (webhook URLs, header values, SMTP
passwords, routing keys) are write-only: messages carry hints instead, and an empty secret in an update
keeps the value stored for the channel of the same name and type.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon_core import validation
from workermon_core.errors import InvalidArgument
from workermon_queues.settings import QueueSettings

from . import globs, routing
from .notify.channels import Channel, ChannelProblem, channels_text, parse_channel
from .rules import IncidentType, RuleBook, RuleConfig, Severity, threshold_adapter, threshold_bounds
from .settings import IncidentSettings

PREFIX = "config"
# Every RuleThresholds field, in the proto's order: the document's "defaults" has them all.
THRESHOLD_FIELDS: tuple[str, ...] = tuple(f.name for f in pb.RuleThresholds.DESCRIPTOR.fields)
_RULE_FIELDS = frozenset(f.name for f in fields(RuleConfig))
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Bounds on list lengths: a configuration is written by people, and each item is checked.
MAX_OVERRIDES = 200
MAX_CHANNELS = 100
MAX_ROUTES = 100
MAX_ESCALATIONS = 10
_CHANNEL_TYPE_PREFIX = "NOTIFICATION_CHANNEL_TYPE_"
# The document's channel keys that differ from the proto's field names.
_PROTO_KEYS = {"smtp.from": "smtp.sender"}
_ROUTE_KEYS = frozenset(
    {
        "name",
        "types",
        "severities",
        "queue_glob",
        "worker_labels",
        "channels",
        "continue_matching",
        "group_wait_seconds",
        "escalations",
    }
)
_TOP_KEYS = frozenset({"defaults", "overrides", "channels", "routes"})
_RANGE_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)

Document = dict[str, Any]


@dataclass(frozen=True)
class Compiled:
    """A checked document as the engine and the notifier use it."""

    rulebook: RuleBook
    channels: list[Channel]
    routes: list[routing.Route]
    # The worker rule's defaults (the engine keeps them in its EngineConfig).
    worker_down_missed_beats: int
    incident_quiet_minutes: float


# --- checking -------------------------------------------------------------------------------------


def compile_document(document: object) -> Compiled:
    """Check a whole document; INVALID_ARGUMENT naming the first bad field ("config.<path>")."""
    if not isinstance(document, dict):
        raise InvalidArgument(PREFIX, "must be an object with defaults, overrides, channels and routes")
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise InvalidArgument(f"{PREFIX}.{unknown[0]}", "unknown key")
    defaults = _thresholds(document.get("defaults"), f"{PREFIX}.defaults", complete=True)
    base = RuleConfig(**{k: v for k, v in defaults.items() if k in _RULE_FIELDS})
    queue_overrides: list[tuple[str, RuleConfig]] = []
    worker_overrides: list[tuple[Mapping[str, str], RuleConfig]] = []
    for i, item in enumerate(_list(document.get("overrides", []), f"{PREFIX}.overrides", MAX_OVERRIDES)):
        glob, labels, values = _override(item, f"{PREFIX}.overrides[{i}]")
        config = replace(base, **{k: v for k, v in values.items() if k in _RULE_FIELDS})
        if glob:
            queue_overrides.append((glob, config))
        if labels:
            worker_overrides.append((labels, config))
    channels = _channels(document.get("channels", []))
    routes = _routes(document.get("routes", []), {c.name for c in channels})
    return Compiled(
        rulebook=RuleBook(base, globs=queue_overrides, workers=worker_overrides),
        channels=channels,
        routes=routes,
        worker_down_missed_beats=int(defaults["worker_down_missed_beats"]),
        incident_quiet_minutes=float(defaults["incident_quiet_minutes"]),
    )


def _list(value: object, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgument(field, "must be a list")
    if len(value) > limit:
        raise InvalidArgument(field, f"must have at most {limit} items")
    return value


def _thresholds(value: object, field: str, *, complete: bool) -> dict[str, Any]:
    """Checked thresholds with the bounds the settings declare; `complete`: every field is required."""
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an object of rule thresholds")
    unknown = sorted(set(value) - set(THRESHOLD_FIELDS))
    if unknown:
        raise InvalidArgument(
            f"{field}.{unknown[0]}", f"unknown threshold (one of {', '.join(THRESHOLD_FIELDS)})"
        )
    checked: dict[str, Any] = {}
    for name in THRESHOLD_FIELDS:
        if name not in value:
            if complete:
                raise InvalidArgument(f"{field}.{name}", "is required in the defaults")
            continue
        raw = value[name]
        try:
            checked[name] = threshold_adapter(name).validate_python(raw, strict=True)
        except ValidationError as exc:
            error = exc.errors()[0]
            bounds = threshold_bounds(name)
            # Out of range: the bounds the settings declare; the wrong type: pydantic's own words.
            message = f"must be {bounds}" if bounds and error["type"] in _RANGE_ERRORS else error["msg"]
            raise InvalidArgument(f"{field}.{name}", f"{message} (got {raw!r})") from None
    return checked


def _labels(value: object, field: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise InvalidArgument(field, "must be an object of label names to values")
    if len(value) > validation.MAX_LABELS:
        raise InvalidArgument(field, f"must have at most {validation.MAX_LABELS} entries")
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidArgument(f"{field}[{key}]", "must be a string")
        validation.text(key, field, validation.MAX_NAME, required=True, control=False)
        validation.text(item, f"{field}[{key}]", validation.MAX_NAME, required=True)
    return dict(value)


def _string(item: Mapping[str, Any], key: str, field: str) -> str:
    value = item.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"{field}.{key}", "must be a string")
    return value


def _override(item: object, field: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    if not isinstance(item, dict):
        raise InvalidArgument(field, "must be an object with queue_glob, worker_labels and thresholds")
    unknown = sorted(set(item) - {"queue_glob", "worker_labels", "thresholds"})
    if unknown:
        raise InvalidArgument(f"{field}.{unknown[0]}", "unknown key")
    glob = globs.check_glob(_string(item, "queue_glob", field), f"{field}.queue_glob")
    labels = _labels(item.get("worker_labels", {}), f"{field}.worker_labels")
    if not glob and not labels:
        raise InvalidArgument(field, "set queue_glob or worker_labels: an override must match something")
    values = _thresholds(item.get("thresholds", {}), f"{field}.thresholds", complete=False)
    return glob, labels, values


def _channels(value: object) -> list[Channel]:
    items = _list(value, f"{PREFIX}.channels", MAX_CHANNELS)
    channels: list[Channel] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        field = f"{PREFIX}.channels[{i}]"
        channel = parse_channel_field(item, field)
        if channel.name in seen:
            raise InvalidArgument(f"{field}.name", f"{channel.name!r} is used by another channel")
        seen.add(channel.name)
        channels.append(channel)
    return channels


def parse_channel_field(item: object, field: str) -> Channel:
    """One channel object; INVALID_ARGUMENT naming `field` and the bad key in the proto's terms."""
    try:
        return parse_channel(item)
    except ChannelProblem as problem:
        key = _PROTO_KEYS.get(problem.key, problem.key)
        raise InvalidArgument(field if key == "channel" else f"{field}.{key}", problem.message) from None


def _names(value: object, field: str, known: set[str]) -> tuple[str, ...]:
    items = _list(value, field, MAX_CHANNELS)
    for name in items:
        if not isinstance(name, str):
            raise InvalidArgument(field, "must be a list of channel names")
        if name not in known:
            raise InvalidArgument(field, f"unknown channel {name!r}")
    return tuple(items)


def _enum_names(value: object, field: str, allowed: Sequence[str]) -> list[str]:
    items = _list(value, field, len(allowed))
    for name in items:
        if name not in allowed:
            raise InvalidArgument(field, f"must be among {', '.join(allowed)} (got {name!r})")
    return items


def _routes(value: object, channels: set[str]) -> list[routing.Route]:
    items = _list(value, f"{PREFIX}.routes", MAX_ROUTES)
    routes: list[routing.Route] = []
    for i, item in enumerate(items):
        field = f"{PREFIX}.routes[{i}]"
        route = _route(item, field, channels)
        if any(r.name == route.name for r in routes):
            raise InvalidArgument(f"{field}.name", f"{route.name!r} is used by another route")
        routes.append(route)
    if routes and not routes[-1].matches_everything:
        raise InvalidArgument(
            f"{PREFIX}.routes[{len(routes) - 1}]",
            "the last route must match every incident (no types, severities, queue_glob or worker_labels)",
        )
    return routes


def _route(item: object, field: str, channels: set[str]) -> routing.Route:
    if not isinstance(item, dict):
        raise InvalidArgument(field, "must be a route object")
    unknown = sorted(set(item) - _ROUTE_KEYS)
    if unknown:
        raise InvalidArgument(f"{field}.{unknown[0]}", "unknown key")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgument(f"{field}.name", "required, 1-64 characters of letters, digits and . _ : -")
    types = _enum_names(item.get("types", []), f"{field}.types", [t.value for t in IncidentType])
    severities = _enum_names(item.get("severities", []), f"{field}.severities", [s.value for s in Severity])
    glob = globs.check_glob(_string(item, "queue_glob", field), f"{field}.queue_glob")
    labels = _labels(item.get("worker_labels", {}), f"{field}.worker_labels")
    continue_matching = item.get("continue_matching", False)
    if not isinstance(continue_matching, bool):
        raise InvalidArgument(f"{field}.continue_matching", "must be true or false")
    wait = item.get("group_wait_seconds", routing.DEFAULT_GROUP_WAIT_SECONDS)
    if isinstance(wait, bool) or not isinstance(wait, int) or not 0 <= wait <= routing.MAX_GROUP_WAIT_SECONDS:
        raise InvalidArgument(
            f"{field}.group_wait_seconds",
            f"must be a whole number from 0 to {routing.MAX_GROUP_WAIT_SECONDS}",
        )
    return routing.Route(
        name=name,
        channels=_names(item.get("channels", []), f"{field}.channels", channels),
        types=frozenset(IncidentType(t) for t in types),
        severities=frozenset(Severity(s) for s in severities),
        queue_glob=glob,
        worker_labels=labels,
        continue_matching=continue_matching,
        group_wait_seconds=wait,
        escalations=_escalations(item.get("escalations", []), f"{field}.escalations", channels),
    )


def _escalations(value: object, field: str, channels: set[str]) -> tuple[routing.EscalationStep, ...]:
    steps: list[routing.EscalationStep] = []
    for i, item in enumerate(_list(value, field, MAX_ESCALATIONS)):
        here = f"{field}[{i}]"
        if not isinstance(item, dict) or set(item) - {"after_minutes", "channels"}:
            raise InvalidArgument(here, "must be an object with after_minutes and channels")
        after = item.get("after_minutes")
        limit = routing.MAX_ESCALATION_MINUTES
        if isinstance(after, bool) or not isinstance(after, int) or not 1 <= after <= limit:
            raise InvalidArgument(f"{here}.after_minutes", f"must be a whole number from 1 to {limit}")
        if steps and after <= steps[-1].after_minutes:
            raise InvalidArgument(f"{here}.after_minutes", "must be above the previous step's")
        names = _names(item.get("channels", []), f"{here}.channels", channels)
        if not names:
            raise InvalidArgument(f"{here}.channels", "name at least one channel")
        steps.append(routing.EscalationStep(after, names))
    return tuple(steps)


# --- secrets --------------------------------------------------------------------------------------


def keep_secrets(document: Document, stored: Document | None) -> Document:
    """`document` with each empty secret taken from the stored channel of the same name and type."""
    merged = copy.deepcopy(document)
    before = {c.get("name"): c for c in (stored or {}).get("channels", []) if isinstance(c, dict)}
    channels = merged.get("channels")
    if not isinstance(channels, list):
        return merged
    for channel in channels:
        if not isinstance(channel, dict):
            continue
        old = before.get(channel.get("name"))
        if old is None or old.get("type") != channel.get("type"):
            continue
        fill_secrets(channel, old)
    return merged


def fill_secrets(channel: dict[str, Any], old: Mapping[str, Any]) -> None:
    """Fill `channel`'s empty secrets (url, routing_key, header values, smtp.password) from `old`."""
    for key in ("url", "routing_key"):
        if not channel.get(key) and old.get(key):
            channel[key] = old[key]
    headers, old_headers = channel.get("headers"), old.get("headers")
    if isinstance(headers, dict) and isinstance(old_headers, dict):
        for name, value in headers.items():
            if value == "" and isinstance(old_headers.get(name), str):
                headers[name] = old_headers[name]
    smtp, old_smtp = channel.get("smtp"), old.get("smtp")
    if (
        isinstance(smtp, dict)
        and isinstance(old_smtp, dict)
        and smtp.get("username")
        and not smtp.get("password")
        and old_smtp.get("password")
    ):
        smtp["password"] = old_smtp["password"]


def secrets_of(channel: Mapping[str, Any]) -> list[str]:
    """Every secret value of a channel object (to scrub from what a receiver answered)."""
    found = [channel.get("url"), channel.get("routing_key")]
    headers = channel.get("headers")
    if isinstance(headers, dict):
        found.extend(headers.values())
    smtp = channel.get("smtp")
    if isinstance(smtp, dict):
        found.append(smtp.get("password"))
    return [s for s in found if isinstance(s, str) and s]


def masked(document: Document) -> Document:
    """The document without its secrets (url, routing_key and smtp.password dropped, header values "")."""
    out = copy.deepcopy(document)
    for channel in out.get("channels", []):
        if not isinstance(channel, dict):
            continue
        channel.pop("url", None)
        channel.pop("routing_key", None)
        if isinstance(channel.get("headers"), dict):
            channel["headers"] = {k: "" for k in channel["headers"]}
        if isinstance(channel.get("smtp"), dict):
            channel["smtp"].pop("password", None)
    return out


def url_hint(url: str) -> str:
    """Where a URL points without its secret part: "https://hooks.slack.com/…"."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(port) if port else ''}/…"


def summary(document: Document | None) -> dict[str, str]:
    """A document described part by part for the audit log: thresholds, matchers and names, no secret."""
    if not document:
        return {"defaults": "", "overrides": "", "channels": "", "routes": ""}

    def compact(value: object) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    overrides = "; ".join(
        f"{o.get('queue_glob') or compact(o.get('worker_labels', {}))}: {compact(o.get('thresholds', {}))}"
        for o in document.get("overrides", [])
    )
    channels = ", ".join(f"{c.get('name')}({c.get('type')})" for c in document.get("channels", []))
    routes = ", ".join(
        f"{r.get('name')}->{'+'.join(r.get('channels', [])) or '-'}" for r in document.get("routes", [])
    )
    return {
        "defaults": compact(document.get("defaults", {})),
        "overrides": overrides,
        "channels": channels,
        "routes": routes,
    }


def require_header_values(document: Document, prefix: str = f"{PREFIX}.channels") -> None:
    """INVALID_ARGUMENT for a header left empty with no stored value to keep (after keep_secrets)."""
    for i, channel in enumerate(document.get("channels", [])):
        headers = channel.get("headers") if isinstance(channel, dict) else None
        if isinstance(headers, dict):
            for name, value in headers.items():
                if value == "":
                    field = f"{prefix}[{i}].headers[{name}]"
                    raise InvalidArgument(field, "required: no value is stored for this header")


# --- the proto ------------------------------------------------------------------------------------


def thresholds_message(values: Mapping[str, Any]) -> pb.RuleThresholds:
    """RuleThresholds with the fields of `values` set."""
    return pb.RuleThresholds(**{k: v for k, v in values.items() if k in THRESHOLD_FIELDS})


def thresholds_from(message: pb.RuleThresholds) -> dict[str, Any]:
    """The fields set in a RuleThresholds."""
    return {name: getattr(message, name) for name in THRESHOLD_FIELDS if message.HasField(name)}  # type: ignore[arg-type]


def channel_message(channel: Mapping[str, Any], *, reveal: bool = False) -> pb.NotificationChannel:
    """A channel object as a NotificationChannel, its secrets replaced by hints (`reveal`: kept, for a
    client uploading a document it was given)."""
    kind = str(channel.get("type", ""))
    try:
        type_value = pb.NotificationChannelType.Value(_CHANNEL_TYPE_PREFIX + kind.upper())
    except ValueError:
        type_value = pb.NOTIFICATION_CHANNEL_TYPE_UNSPECIFIED
    message = pb.NotificationChannel(name=str(channel.get("name", "")), type=type_value)
    _secret_fields(message, channel, reveal=reveal)
    for key in ("send_resolved", "send_acknowledged"):
        if isinstance(channel.get(key), bool):
            setattr(message, key, channel[key])
    for key in ("template", "link"):
        if isinstance(channel.get(key), str):
            setattr(message, key, channel[key])
    if isinstance(channel.get("headers"), dict):
        message.headers.update({str(k): str(v) if reveal else "" for k, v in channel["headers"].items()})
    if isinstance(channel.get("timeout_seconds"), (int, float)):
        message.timeout_seconds = float(channel["timeout_seconds"])
    if isinstance(channel.get("max_attempts"), int):
        message.max_attempts = channel["max_attempts"]
    smtp = channel.get("smtp")
    if isinstance(smtp, dict):
        message.smtp.CopyFrom(_smtp_message(smtp, reveal=reveal))
    return message


def _secret_fields(message: pb.NotificationChannel, channel: Mapping[str, Any], *, reveal: bool) -> None:
    """Set the url and routing_key hints (and, when `reveal`, the secrets themselves)."""
    url = channel.get("url")
    if isinstance(url, str) and url:
        message.url_hint = url_hint(url)
        if reveal:
            message.url = url
    routing_key = channel.get("routing_key")
    if isinstance(routing_key, str) and routing_key:
        # The last four characters only, and none of a key too short to spare them.
        message.routing_key_hint = routing_key[-4:] if len(routing_key) > 8 else ""
        if reveal:
            message.routing_key = routing_key


def _smtp_message(smtp: Mapping[str, Any], *, reveal: bool) -> pb.SmtpServer:
    """A channel object's "smtp" as an SmtpServer, the password left out unless `reveal`."""
    to = smtp.get("to", [])
    return pb.SmtpServer(
        host=str(smtp.get("host", "")),
        port=int(smtp.get("port", 0) or 0),
        username=str(smtp.get("username") or ""),
        password=str(smtp.get("password") or "") if reveal else "",
        password_set=bool(smtp.get("password")),
        starttls=bool(smtp.get("starttls", False)),
        tls=bool(smtp.get("tls", False)),
        sender=str(smtp.get("from", "")),
        to=[to] if isinstance(to, str) else [str(a) for a in to],
    )


def channel_from(message: pb.NotificationChannel) -> dict[str, Any]:
    """A NotificationChannel as a channel object (unset and empty fields left out: defaults, kept secrets)."""
    try:
        kind = pb.NotificationChannelType.Name(message.type).removeprefix(_CHANNEL_TYPE_PREFIX).lower()
    except ValueError:
        kind = str(message.type)
    channel: dict[str, Any] = {"name": message.name, "type": "" if kind == "unspecified" else kind}
    for key in ("url", "template", "link", "routing_key"):
        if getattr(message, key):
            channel[key] = getattr(message, key)
    if message.HasField("send_resolved"):
        channel["send_resolved"] = message.send_resolved
    if message.HasField("send_acknowledged"):
        channel["send_acknowledged"] = message.send_acknowledged
    if message.headers:
        channel["headers"] = dict(message.headers)
    if message.timeout_seconds:
        channel["timeout_seconds"] = message.timeout_seconds
    if message.max_attempts:
        channel["max_attempts"] = message.max_attempts
    if message.HasField("smtp"):
        channel["smtp"] = _smtp_from(message.smtp)
    return channel


def _smtp_from(smtp: pb.SmtpServer) -> dict[str, Any]:
    """An SmtpServer as the channel object's "smtp" (the sender is "from"; unset fields left out)."""
    server: dict[str, Any] = {"host": smtp.host, "from": smtp.sender, "to": list(smtp.to)}
    for key in ("port", "username", "password", "starttls", "tls"):
        if getattr(smtp, key):
            server[key] = getattr(smtp, key)
    return server


def route_message(route: Mapping[str, Any]) -> pb.NotificationRoute:
    """A route object as a NotificationRoute."""
    message = pb.NotificationRoute(
        name=str(route.get("name", "")),
        types=[pb.IncidentType.Value("INCIDENT_TYPE_" + t) for t in route.get("types", [])],
        severities=[pb.Severity.Value("SEVERITY_" + s) for s in route.get("severities", [])],
        queue_glob=str(route.get("queue_glob", "")),
        worker_labels=dict(route.get("worker_labels", {})),
        channels=list(route.get("channels", [])),
        continue_matching=bool(route.get("continue_matching", False)),
        escalations=[
            pb.EscalationStep(after_minutes=s["after_minutes"], channels=list(s["channels"]))
            for s in route.get("escalations", [])
        ],
    )
    if "group_wait_seconds" in route:
        message.group_wait_seconds = int(route["group_wait_seconds"])
    return message


def _enum_text(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def route_from(message: pb.NotificationRoute) -> dict[str, Any]:
    """A NotificationRoute as a route object."""
    route: dict[str, Any] = {
        "name": message.name,
        "types": [_enum_text(pb.IncidentType, t, "INCIDENT_TYPE_") for t in message.types],
        "severities": [_enum_text(pb.Severity, s, "SEVERITY_") for s in message.severities],
        "queue_glob": message.queue_glob,
        "worker_labels": dict(message.worker_labels),
        "channels": list(message.channels),
        "continue_matching": message.continue_matching,
        "escalations": [
            {"after_minutes": s.after_minutes, "channels": list(s.channels)} for s in message.escalations
        ],
    }
    if message.HasField("group_wait_seconds"):
        route["group_wait_seconds"] = message.group_wait_seconds
    return route


def document_from(message: pb.AlertingConfig) -> Document:
    """The document an AlertingConfig describes (revision, author, time and comment are not part of it)."""
    return {
        "defaults": thresholds_from(message.defaults),
        "overrides": [
            {
                "queue_glob": o.queue_glob,
                "worker_labels": dict(o.worker_labels),
                "thresholds": thresholds_from(o.thresholds),
            }
            for o in message.overrides
        ],
        "channels": [channel_from(c) for c in message.channels],
        "routes": [route_from(r) for r in message.routes],
    }


def document_message(document: Document, *, reveal: bool = False) -> pb.AlertingConfig:
    """A document as an AlertingConfig, secrets replaced by hints unless `reveal` (revision and the rest
    left unset)."""
    return pb.AlertingConfig(
        defaults=thresholds_message(document.get("defaults", {})),
        overrides=[
            pb.RuleOverride(
                queue_glob=o.get("queue_glob", ""),
                worker_labels=dict(o.get("worker_labels", {})),
                thresholds=thresholds_message(o.get("thresholds", {})),
            )
            for o in document.get("overrides", [])
        ],
        channels=[channel_message(c, reveal=reveal) for c in document.get("channels", [])],
        routes=[route_message(r) for r in document.get("routes", [])],
    )


# --- the environment ------------------------------------------------------------------------------


def from_environment(settings: IncidentSettings, queues: QueueSettings) -> Document:
    """The document the environment describes: IncidentSettings' defaults, WORKERMON_BACKLOG_THRESHOLDS and
    WORKERMON_INCIDENT_RULES as exact-name overrides, and the channels of WORKERMON_NOTIFY_CHANNELS(_FILE)."""
    book = RuleBook.from_settings(settings, queues)
    defaults = {name: getattr(book.defaults, name) for name in THRESHOLD_FIELDS if name in _RULE_FIELDS}
    defaults["worker_down_missed_beats"] = settings.worker_down_missed_beats
    per_queue: dict[str, dict[str, Any]] = {
        queue: {"backlog_threshold": threshold}
        for queue, threshold in queues.queue_backlog_thresholds.items()
    }
    for queue, values in settings.rule_overrides.items():
        per_queue.setdefault(queue, {}).update(values)
    text, _variable = channels_text(settings)
    return {
        "defaults": defaults,
        "overrides": [
            {"queue_glob": globs.escape(queue), "worker_labels": {}, "thresholds": values}
            for queue, values in sorted(per_queue.items())
        ],
        # Validated when the settings were read.
        "channels": json.loads(text) if text.strip() else [],
        "routes": [],
    }
