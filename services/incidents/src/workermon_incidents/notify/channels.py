"""Notification channels from WORKERMON_NOTIFY_CHANNELS (JSON) or WORKERMON_NOTIFY_CHANNELS_FILE.

A channel is one receiver: a Slack incoming webhook, a generic JSON webhook (Alertmanager's payload,
or the JSON a Jinja2 template renders, so any chat tool's webhook can be reached), an SMTP mailbox
list, a KakaoWork incoming webhook, or a PagerDuty service (Events API v2). Example:

    [
      {"name": "ops-slack", "type": "slack", "url": "https://hooks.slack.com/services/T/B/X",
       "link": "https://ops.example.com/incidents/{incident_id}"},
      {"name": "pager", "type": "webhook", "url": "https://pager.example.com/hook",
       "headers": {"Authorization": "Bearer s3cr3t"}, "send_resolved": false,
       "timeout_seconds": 5, "max_attempts": 8},
      {"name": "teams", "type": "webhook", "url": "https://example.webhook.office.com/...",
       "template": "{\\"text\\": {{ (incident.title ~ ' (' ~ reason ~ ')') | tojson }}}"},
      {"name": "mail", "type": "email",
       "smtp": {"host": "smtp.example.com", "port": 587, "starttls": true, "username": "alerts",
                "password": "...", "from": "alerts@example.com", "to": ["ops@example.com"]}},
      {"name": "kakao", "type": "kakaowork", "url": "https://kakaowork.com/bots/hook/..."},
      {"name": "oncall", "type": "pagerduty", "routing_key": "0123456789abcdef0123456789abcdef",
       "link": "https://ops.example.com/incidents/{incident_id}"}
    ]

Every mistake is reported as a ConfigError naming the variable, the channel and the key, e.g.
`WORKERMON_NOTIFY_CHANNELS: channel 'pager': timeout_seconds: must be a number above 0 and at most
120 (got 0)`. Secrets (webhook URLs, which carry their token in the path, header values, SMTP
passwords and PagerDuty routing keys) are held in `Secret`, whose repr and str hide the value, and
are never put in messages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from workermon_core.settings import ConfigError, env_name

if TYPE_CHECKING:
    from ..settings import IncidentSettings

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_ATTEMPTS = 5
MAX_TIMEOUT_SECONDS = 120.0
MAX_ATTEMPTS_LIMIT = 50
# Where PagerDuty's Events API v2 takes alert events (a channel's `url` replaces it, e.g. for a proxy).
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_HEADER_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# An Events API v2 integration key: 32 characters (PagerDuty's "Send an Alert Event" reference).
_ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")
_KEYS = frozenset(
    {
        "name",
        "type",
        "url",
        "send_resolved",
        "send_acknowledged",
        "template",
        "headers",
        "timeout_seconds",
        "max_attempts",
        "link",
        "smtp",
        "routing_key",
    }
)
_SMTP_KEYS = frozenset({"host", "port", "username", "password", "starttls", "tls", "from", "to"})

# Templates are operator-supplied text: the sandbox keeps them from reaching Python internals.
_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class ChannelType(StrEnum):
    """Where a channel delivers."""

    SLACK = "slack"
    WEBHOOK = "webhook"
    EMAIL = "email"
    KAKAOWORK = "kakaowork"
    PAGERDUTY = "pagerduty"

    @property
    def http(self) -> bool:
        """True for the channels delivered by an HTTP POST."""
        return self is not ChannelType.EMAIL

    @property
    def custom_body(self) -> bool:
        """True for the channels whose body may come from a template and carry extra headers."""
        return self in (ChannelType.SLACK, ChannelType.WEBHOOK, ChannelType.KAKAOWORK)

    @property
    def groups(self) -> bool:
        """True for the types whose message can carry several incidents (FIRED grouping applies)."""
        return self in (ChannelType.SLACK, ChannelType.WEBHOOK, ChannelType.EMAIL, ChannelType.KAKAOWORK)


class Secret:
    """A configured secret: its value is read with `reveal()`, never shown by repr or str."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself (for the request, never for a log line)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, kw_only=True, slots=True)
class SmtpConfig:
    """An SMTP server and the mail's envelope."""

    host: str
    port: int
    username: str | None
    password: Secret | None
    starttls: bool
    # Implicit TLS from the first byte (port 465), as opposed to STARTTLS on a plain connection.
    tls: bool
    sender: str
    to: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Channel:
    """One configured receiver of notifications."""

    name: str
    type: ChannelType
    url: Secret | None = None
    send_resolved: bool = True
    send_acknowledged: bool = False
    template: Template | None = field(default=None, compare=False)
    template_source: str | None = None
    headers: Mapping[str, Secret] = field(default_factory=dict)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # A URL with `{incident_id}` in it, linked from Slack, KakaoWork and e-mail messages.
    link: str | None = None
    smtp: SmtpConfig | None = None
    # The PagerDuty integration key (pagerduty channels only); it goes in the event body.
    routing_key: Secret | None = None

    @property
    def groups(self) -> bool:
        """True when FIRED notifications of one route may share a message on this channel."""
        return self.type.groups

    @property
    def target(self) -> str:
        """Where it delivers, safe to log: the URL's scheme and host, or the SMTP server."""
        if self.smtp is not None:
            return f"smtp://{self.smtp.host}:{self.smtp.port}"
        if self.url is None:
            return ""
        parts = urlsplit(self.url.reveal())
        # Webhook URLs carry their token in the path (Slack, KakaoWork): only the host is shown.
        return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/…"

    def link_for(self, incident_id: int) -> str | None:
        """The configured link with the incident id filled in, or None."""
        return None if self.link is None else self.link.replace("{incident_id}", str(incident_id))


class ChannelProblem(Exception):
    """One mistake in a channel object: the key (dotted, e.g. "smtp.host") and what is wrong."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


_Problem = ChannelProblem


def parse_channel(item: object) -> Channel:
    """One channel object (the WORKERMON_NOTIFY_CHANNELS format); ChannelProblem names the bad key."""
    return _channel(item)


def load_channels(settings: IncidentSettings) -> list[Channel]:
    """The channels configured in the environment (none when neither variable is set)."""
    text, variable = channels_text(settings)
    if not text.strip():
        return []
    return parse_channels(text, variable)


def channels_text(settings: IncidentSettings) -> tuple[str, str]:
    """The JSON text of the environment's channels and the variable it came from ("" when unset)."""
    text = settings.notify_channels.strip()
    path = settings.notify_channels_file
    variable = env_name("notify_channels", type(settings))
    file_variable = env_name("notify_channels_file", type(settings))
    if text and path is not None:
        raise ConfigError(
            f"invalid configuration: {variable} and {file_variable} are both set; use one of them"
        )
    if path is not None:
        variable = file_variable
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"invalid configuration: {variable}: cannot read {path}: {exc.strerror}"
            ) from None
    return text, variable


def parse_channels(text: str, variable: str = "WORKERMON_NOTIFY_CHANNELS") -> list[Channel]:
    """Parse a JSON list of channel objects; ConfigError names `variable`, the channel and the key."""
    prefix = f"invalid configuration: {variable}"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{prefix}: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConfigError(f"{prefix}: must be a JSON list of channel objects")
    channels: list[Channel] = []
    seen: set[str] = set()
    for index, item in enumerate(data):
        label = f"channel #{index + 1}"
        if isinstance(item, dict) and isinstance(item.get("name"), str) and item["name"]:
            label = f"channel {item['name']!r}"
        try:
            channel = _channel(item)
        except _Problem as exc:
            raise ConfigError(f"{prefix}: {label}: {exc}") from None
        if channel.name in seen:
            raise ConfigError(f"{prefix}: {label}: name: used by another channel")
        seen.add(channel.name)
        channels.append(channel)
    return channels


def _channel(item: object) -> Channel:
    if not isinstance(item, dict):
        raise _Problem("channel", "must be a JSON object")
    unknown = sorted(set(item) - _KEYS)
    if unknown:
        raise _Problem(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _Problem("name", "required, 1-64 characters of letters, digits and . _ : -")
    kind_text = item.get("type")
    try:
        kind = ChannelType(str(kind_text))
    except ValueError:
        raise _Problem(
            "type", f"must be one of {', '.join(t.value for t in ChannelType)} (got {kind_text!r})"
        ) from None
    url, smtp = _destination(item, kind)
    template_source = item.get("template")
    template: Template | None = None
    if template_source is not None:
        if not kind.custom_body:
            raise _Problem("template", "only for webhook, slack and kakaowork channels")
        template = _template(template_source)
    headers = item.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and _HEADER_RE.match(k) and isinstance(v, str) for k, v in headers.items()
    ):
        raise _Problem("headers", "must be an object of header names to string values")
    if headers and not kind.custom_body:
        raise _Problem("headers", "only for webhook, slack and kakaowork channels")
    link = _url(item.get("link"), "link", required=False)
    channel = Channel(
        name=name,
        type=kind,
        url=url,
        send_resolved=_bool(item, "send_resolved", True),
        # PagerDuty keeps its own incident in step with ours: its acknowledge stops its escalation.
        send_acknowledged=_bool(item, "send_acknowledged", kind is ChannelType.PAGERDUTY),
        template=template,
        template_source=template_source,
        headers={k: Secret(v) for k, v in headers.items()},
        timeout_seconds=_number(item, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS),
        max_attempts=_attempts(item),
        link=link,
        smtp=smtp,
        routing_key=_routing_key(item, kind),
    )
    if template is not None:
        _try_template(channel)
    return channel


def _destination(item: Mapping[str, Any], kind: ChannelType) -> tuple[Secret | None, SmtpConfig | None]:
    """Where the channel sends: a URL for an HTTP channel, an SMTP server for email (never both)."""
    if kind is ChannelType.PAGERDUTY:
        if "smtp" in item:
            raise _Problem("smtp", "only for email channels, not pagerduty")
        return Secret(_url(item.get("url"), "url", required=False) or PAGERDUTY_EVENTS_URL), None
    if kind.http:
        url = Secret(_url(item.get("url"), "url", required=True) or "")
        if "smtp" in item:
            raise _Problem("smtp", f"only for email channels, not {kind.value}")
        return url, None
    if "url" in item:
        raise _Problem("url", "email channels are configured by smtp, not url")
    return None, _smtp(item.get("smtp"))


def _routing_key(item: Mapping[str, Any], kind: ChannelType) -> Secret | None:
    """A pagerduty channel's integration key (required there, refused elsewhere), never echoed."""
    value = item.get("routing_key")
    if kind is not ChannelType.PAGERDUTY:
        if value is not None:
            raise _Problem("routing_key", f"only for pagerduty channels, not {kind.value}")
        return None
    if not isinstance(value, str) or not _ROUTING_KEY_RE.match(value):
        raise _Problem(
            "routing_key",
            "required, the 32-character integration key (letters and digits) of an Events API v2 integration",
        )
    return Secret(value)


def _url(value: object, key: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise _Problem(key, "required, an http:// or https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value may hold a token: say what is wrong without repeating it.
        raise _Problem(key, "must be an http:// or https:// URL with a host")
    return value


def _bool(item: Mapping[str, Any], key: str, default: bool) -> bool:
    value = item.get(key, default)
    if not isinstance(value, bool):
        raise _Problem(key, f"must be true or false (got {value!r})")
    return value


def _number(item: Mapping[str, Any], key: str, default: float) -> float:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise _Problem(key, f"must be a number above 0 and at most {MAX_TIMEOUT_SECONDS:g} (got {value!r})")
    return float(value)


def _attempts(item: Mapping[str, Any]) -> int:
    value = item.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise _Problem(
            "max_attempts", f"must be a whole number from 1 to {MAX_ATTEMPTS_LIMIT} (got {value!r})"
        )
    return value


def _template(source: object) -> Template:
    if not isinstance(source, str) or not source.strip():
        raise _Problem("template", "must be a non-empty Jinja2 template producing JSON")
    try:
        return _TEMPLATES.from_string(source)
    except TemplateError as exc:
        raise _Problem("template", f"not a valid Jinja2 template: {exc}") from None


def _try_template(channel: Channel) -> None:
    # Rendered once against a sample incident, so a template that can never produce JSON stops the
    # start instead of failing every notification later.
    from .payloads import TemplateRenderError, render_template, sample_event

    try:
        render_template(channel, sample_event())
    except TemplateRenderError as exc:
        raise _Problem("template", str(exc)) from None


def _smtp_login(value: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The SMTP username and password: both or neither."""
    username = value.get("username")
    password = value.get("password")
    if username is not None and (not isinstance(username, str) or not username):
        raise _Problem("smtp.username", "must be a non-empty string")
    if password is not None and not isinstance(password, str):
        raise _Problem("smtp.password", "must be a string")
    if (username is None) != (password is None):
        raise _Problem(
            "smtp.password" if password is None else "smtp.username", "username and password go together"
        )
    return username, password


def _smtp(value: object) -> SmtpConfig:
    if not isinstance(value, dict):
        raise _Problem("smtp", "required for email channels: an object with host, from and to")
    unknown = sorted(set(value) - _SMTP_KEYS)
    if unknown:
        raise _Problem(f"smtp.{unknown[0]}", f"unknown key (known: {', '.join(sorted(_SMTP_KEYS))})")
    host = value.get("host")
    if not isinstance(host, str) or not host:
        raise _Problem("smtp.host", "required, the SMTP server's host name")
    tls = value.get("tls", False)
    starttls = value.get("starttls", False)
    for key, flag in (("tls", tls), ("starttls", starttls)):
        if not isinstance(flag, bool):
            raise _Problem(f"smtp.{key}", f"must be true or false (got {flag!r})")
    if tls and starttls:
        raise _Problem("smtp.starttls", "tls (implicit TLS) and starttls exclude each other")
    port = value.get("port", 465 if tls else 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _Problem("smtp.port", f"must be a port number from 1 to 65535 (got {port!r})")
    username, password = _smtp_login(value)
    sender = value.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        raise _Problem("smtp.from", "required, the sender's e-mail address")
    to = value.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise _Problem("smtp.to", "required, a list of one or more e-mail addresses")
    return SmtpConfig(
        host=host,
        port=port,
        username=username,
        password=None if password is None else Secret(password),
        starttls=starttls,
        tls=tls,
        sender=sender,
        to=tuple(to),
    )
