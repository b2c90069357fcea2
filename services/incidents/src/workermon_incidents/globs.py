"""Queue-name globs (*, ? and [abc]) as silences, maintenance windows, rule overrides and routes use them."""

from __future__ import annotations

import re

from workermon_core import validation
from workermon_core.errors import InvalidArgument

_GLOB_CHARS = re.compile(r"^[^\x00-\x1f\x7f]*$")
_SPECIAL = re.compile(r"([*?\[])")


def check_glob(glob: str, field: str) -> str:
    """`glob` when it is a usable glob (empty included); INVALID_ARGUMENT naming `field` otherwise."""
    validation.text(glob, field, validation.MAX_NAME)
    if glob and (not _GLOB_CHARS.match(glob) or not _balanced(glob)):
        raise InvalidArgument(field, "is not a valid glob (use *, ? and [abc])")
    return glob


def escape(name: str) -> str:
    """A glob matching exactly `name` (an exact-name override written as a glob)."""
    return _SPECIAL.sub(r"[\1]", name)


def _balanced(glob: str) -> bool:
    """False for an unclosed `[` (fnmatch would take it literally, which nobody means)."""
    depth = False
    for char in glob:
        if char == "[":
            depth = True
        elif char == "]":
            depth = False
    return not depth
