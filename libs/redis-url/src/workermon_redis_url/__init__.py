"""The Redis URLs the suite accepts, checked and parsed in one place.

A plain URL (``redis://``, ``rediss://``, ``unix://``) goes to redis-py as it is. A Sentinel URL names
the sentinels and the primary they watch; redis-py has no URL form for that, so it is parsed here::

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/<master name>[/<db>]
        [?sentinel_password=...&sentinel_username=...]

The user part (or ``?username=`` / ``?password=``) is what the primary and its replicas ask for; the
``sentinel_*`` keys are what the sentinels ask for (none by default). A port left out is 26379; an IPv6
address goes in brackets. Reserved characters in a password or name are percent-encoded.

``libs/core`` (the suite's Redis, and the clients of both Redises) and ``libs/queues`` (the watched
BullMQ Redis's setting) both check URLs with this; neither may depend on the other, so it is a package
of its own, with no dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SENTINEL_SCHEME = "redis+sentinel://"
SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)
DEFAULT_SENTINEL_PORT = 26379
FORM = "redis+sentinel://[:password@]host:port,host:port,.../<master name>[/<db>]"
_QUERY_KEYS = ("password", "sentinel_password", "sentinel_username", "username")
_MAX_PORT = 65535
# A password in the user part of any URL, or in a query key naming a password.
_USER_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&][a-z_]*password=)[^&#]*", re.IGNORECASE)


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    # What the primary and its replicas ask for (AUTH).
    username: str | None = None
    password: str | None = None
    # What the sentinels ask for.
    sentinel_username: str | None = None
    sentinel_password: str | None = None


def is_sentinel(url: str) -> bool:
    """Whether `url` names a Sentinel-managed primary."""
    return url.startswith(SENTINEL_SCHEME)


def check_redis_url(url: str) -> str:
    """`url` unchanged if the suite can use it; ValueError naming the part that is wrong."""
    if not url.startswith(SCHEMES):
        raise ValueError("must start with " + ", ".join(SCHEMES[:-1]) + " or " + SCHEMES[-1])
    if is_sentinel(url):
        parse_sentinel_url(url)
    return url


def redact(url: str) -> str:
    """`url` with its passwords (in the user part and in ``*password=`` query keys) shown as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1***@", url))


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; ValueError naming the part that is wrong (never showing
    a password)."""
    if not is_sentinel(url):
        raise ValueError(f"must start with {SENTINEL_SCHEME}")
    rest, _, query = url.removeprefix(SENTINEL_SCHEME).partition("?")
    if "#" in query or "#" in rest:
        raise ValueError("a fragment (#...) has no meaning here; percent-encode '#' as %23")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    options = _query(query)
    for key, given in (("username", username), ("password", password)):
        if given is not None and key in options:
            raise ValueError(f"{key}: given both before '@' and as ?{key}=")
    master, db = _path(path)
    return SentinelUrl(
        sentinels=_hosts(hosts),
        master=master,
        db=db,
        username=options.get("username", username),
        password=options.get("password", password),
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _hosts(text: str) -> tuple[tuple[str, int], ...]:
    if not text:
        raise ValueError(f"sentinels: none given ({FORM})")
    return tuple(_host(item) for item in text.split(","))


def _host(item: str) -> tuple[str, int]:
    if not item:
        raise ValueError("sentinels: an empty entry in the comma-separated list")
    if item.startswith("["):
        host, bracket, port = item[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"sentinel {item!r}: an IPv6 address is written [address]:port")
        port = port[1:]
    else:
        host, _, port = item.partition(":")
        if ":" in port:
            raise ValueError(f"sentinel {item!r}: an IPv6 address is written [address]:port")
    if not host:
        raise ValueError(f"sentinel {item!r}: no host")
    if not port:
        return host, DEFAULT_SENTINEL_PORT
    if not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise ValueError(f"sentinel {item!r}: the port must be a number from 1 to {_MAX_PORT}")
    return host, int(port)


def _path(path: str) -> tuple[str, int]:
    parts = path.removesuffix("/").split("/") if path else []
    if not parts or not parts[0]:
        raise ValueError(f"master name: missing ({FORM})")
    if len(parts) > 2:
        raise ValueError(f"path: expected /<master name>[/<db>], got {len(parts)} parts")
    master = unquote(parts[0])
    if len(parts) == 1:
        return master, 0
    if not parts[1].isdigit():
        raise ValueError(f"db: must be a whole number, not {parts[1]!r}")
    return master, int(parts[1])


def _query(query: str) -> dict[str, str]:
    try:
        found = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError("query: expected key=value pairs joined by '&'") from None
    options = {}
    for key, values in found.items():
        if key not in _QUERY_KEYS:
            raise ValueError(f"query key {key!r}: unknown (known: {', '.join(_QUERY_KEYS)})")
        if len(values) > 1:
            raise ValueError(f"query key {key!r}: given more than once")
        options[key] = values[0]
    return options
