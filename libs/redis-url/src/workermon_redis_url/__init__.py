"""The Redis URLs the suite accepts, checked and parsed in one place.

A plain URL (``redis://``, ``rediss://``, ``unix://``) goes to redis-py as it is. A Sentinel URL names
the sentinels and the primary they watch; redis-py has no URL form for that, so it is parsed here::

    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/<master name>[/<db>]
        [?sentinel_password=...&sentinel_username=...]

The user part (or ``?username=`` / ``?password=``) is what the primary and its replicas ask for; the
``sentinel_*`` keys are what the sentinels ask for (none by default). A port left out is 26379; an IPv6
address goes in brackets. Reserved characters in a password or name are percent-encoded.

A Redis Cluster URL names some of its nodes (any of them: the client learns the rest from them)::

    redis+cluster://[[username]:password@]host[:port][,host[:port]...][/][?username=...&password=...]

A port left out is 6379. A cluster has no databases but 0, so no path is taken.

``libs/core`` (the suite's Redis, and the clients of both Redises) and ``libs/queues`` (the watched
BullMQ Redis's setting) both check URLs with this; neither may depend on the other, so it is a package
of its own, with no dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote

SENTINEL_SCHEME = "redis+sentinel://"
CLUSTER_SCHEME = "redis+cluster://"
SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME, CLUSTER_SCHEME)
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_REDIS_PORT = 6379
FORM = "redis+sentinel://[:password@]host:port,host:port,.../<master name>[/<db>]"
CLUSTER_FORM = "redis+cluster://[:password@]host:port,host:port,..."
_QUERY_KEYS = ("password", "sentinel_password", "sentinel_username", "username")
_CLUSTER_QUERY_KEYS = ("password", "username")
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


@dataclass(frozen=True)
class ClusterUrl:
    """A parsed ``redis+cluster://`` URL: the nodes to learn the cluster from, and what they ask for."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def is_sentinel(url: str) -> bool:
    """Whether `url` names a Sentinel-managed primary."""
    return url.startswith(SENTINEL_SCHEME)


def is_cluster(url: str) -> bool:
    """Whether `url` names a Redis Cluster."""
    return url.startswith(CLUSTER_SCHEME)


def check_redis_url(url: str) -> str:
    """`url` unchanged if the suite can use it; ValueError naming the part that is wrong."""
    if not url.startswith(SCHEMES):
        raise ValueError("must start with " + ", ".join(SCHEMES[:-1]) + " or " + SCHEMES[-1])
    if is_sentinel(url):
        parse_sentinel_url(url)
    if is_cluster(url):
        parse_cluster_url(url)
    return url


def redact(url: str) -> str:
    """`url` with its passwords (in the user part and in ``*password=`` query keys) shown as ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1***@", url))


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a ``redis+sentinel://`` URL; ValueError naming the part that is wrong (never showing
    a password)."""
    if not is_sentinel(url):
        raise ValueError(f"must start with {SENTINEL_SCHEME}")
    hosts, path, username, password, options = _split(url.removeprefix(SENTINEL_SCHEME), _QUERY_KEYS)
    master, db = _path(path)
    return SentinelUrl(
        sentinels=_hosts(hosts, "sentinel", DEFAULT_SENTINEL_PORT, FORM),
        master=master,
        db=db,
        username=username,
        password=password,
        sentinel_username=options.get("sentinel_username"),
        sentinel_password=options.get("sentinel_password"),
    )


def parse_cluster_url(url: str) -> ClusterUrl:
    """The parts of a ``redis+cluster://`` URL; ValueError naming the part that is wrong (never showing
    a password)."""
    if not is_cluster(url):
        raise ValueError(f"must start with {CLUSTER_SCHEME}")
    hosts, path, username, password, _ = _split(url.removeprefix(CLUSTER_SCHEME), _CLUSTER_QUERY_KEYS)
    if path.strip("/"):
        raise ValueError(f"path: a cluster has only database 0, so no path is taken ({CLUSTER_FORM})")
    return ClusterUrl(
        nodes=_hosts(hosts, "cluster node", DEFAULT_REDIS_PORT, CLUSTER_FORM),
        username=username,
        password=password,
    )


def _split(rest: str, query_keys: tuple[str, ...]) -> tuple[str, str, str | None, str | None, dict[str, str]]:
    """hosts, path, username, password and the query of a URL without its scheme."""
    rest, _, query = rest.partition("?")
    if "#" in query or "#" in rest:
        raise ValueError("a fragment (#...) has no meaning here; percent-encode '#' as %23")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    options = _query(query, query_keys)
    for key, given in (("username", username), ("password", password)):
        if given is not None and key in options:
            raise ValueError(f"{key}: given both before '@' and as ?{key}=")
    return hosts, path, options.get("username", username), options.get("password", password), options


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None)


def _hosts(text: str, what: str, default_port: int, form: str) -> tuple[tuple[str, int], ...]:
    """The comma-separated `host[:port]` list naming each `what` (a sentinel, a cluster node)."""
    if not text:
        raise ValueError(f"{what}s: none given ({form})")
    return tuple(_host(item, what, default_port) for item in text.split(","))


def _host(item: str, what: str, default_port: int) -> tuple[str, int]:
    if not item:
        raise ValueError(f"{what}s: an empty entry in the comma-separated list")
    if item.startswith("["):
        host, bracket, port = item[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            raise ValueError(f"{what} {item!r}: an IPv6 address is written [address]:port")
        port = port[1:]
    else:
        host, _, port = item.partition(":")
        if ":" in port:
            raise ValueError(f"{what} {item!r}: an IPv6 address is written [address]:port")
    if not host:
        raise ValueError(f"{what} {item!r}: no host")
    if not port:
        return host, default_port
    if not port.isdigit() or not 1 <= int(port) <= _MAX_PORT:
        raise ValueError(f"{what} {item!r}: the port must be a number from 1 to {_MAX_PORT}")
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


def _query(query: str, known: tuple[str, ...]) -> dict[str, str]:
    try:
        found = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError("query: expected key=value pairs joined by '&'") from None
    options = {}
    for key, values in found.items():
        if key not in known:
            raise ValueError(f"query key {key!r}: unknown (known: {', '.join(known)})")
        if len(values) > 1:
            raise ValueError(f"query key {key!r}: given more than once")
        options[key] = values[0]
    return options
