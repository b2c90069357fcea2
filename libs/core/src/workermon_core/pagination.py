"""AIP-158 pagination: page size rules and opaque page tokens bound to the request's filters."""

from __future__ import annotations

import base64
import hashlib
import json

from .errors import InvalidArgument
from .validation import page_token


def page_size(requested: int, default: int, maximum: int, field: str = "page_size") -> int:
    """0 means the default; above the maximum is coerced to it; negative is refused."""
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def bounded_page_size(requested: int, default: int, maximum: int, field: str = "page_size") -> int:
    """0 means the default; negative or above the maximum is refused (for lists whose rows are costly)."""
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    if requested > maximum:
        raise InvalidArgument(field, f"must be at most {maximum}")
    return requested or default


def _filters_digest(filters: tuple[object, ...]) -> str:
    return hashlib.blake2b(repr(filters).encode(), digest_size=6).hexdigest()


def encode_token(cursor: str, filters: tuple[object, ...]) -> str:
    """An opaque token carrying where to resume and a digest of the filters it is valid for."""
    raw = json.dumps({"c": cursor, "f": _filters_digest(filters)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, filters: tuple[object, ...], field: str = "page_token") -> str | None:
    """The cursor inside `token` (None for an empty token); INVALID_ARGUMENT if forged or reused."""
    if not token:
        return None
    page_token(token, field)
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor, digest = data["c"], data["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(field, "is not a token this service issued") from None
    if digest != _filters_digest(filters) or not isinstance(cursor, str):
        raise InvalidArgument(field, "was issued for different filters; start again without it")
    return cursor
