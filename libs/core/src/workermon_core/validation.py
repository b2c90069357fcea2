"""Input limits every service shares; a bad value is INVALID_ARGUMENT naming the field."""

from __future__ import annotations

import re

from .errors import InvalidArgument

_QUEUE_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def queue_name(value: str, field: str) -> str:
    """A queue name: 1-200 characters with no control characters."""
    if not _QUEUE_NAME_RE.match(value):
        raise InvalidArgument(field, "must be 1-200 characters with no control characters")
    return value
