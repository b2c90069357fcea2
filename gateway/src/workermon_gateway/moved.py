"""API paths that moved: the old path answers 308 Permanent Redirect to the new one for one release.

A rename in a proto's google.api.http rule is one line in MOVED (old template -> new template); the
variables the old template binds are carried into the new one as they came (still percent-encoded), the
query string is kept, and 308 keeps the method and body, so clients and bookmarks keep working while they
move. Drop an entry one release after the rename.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .transcode import PathTemplate

# Old template -> new template (relative to the base path), as in the protos' google.api.http rules.
MOVED: Mapping[str, str] = {
    # AIP-122: collection ids in lowerCamelCase.
    "/v1/audit-logs": "/v1/auditLogs",
}
_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=[^}]*)?\}")


@dataclass(frozen=True, slots=True)
class MovedPath:
    """One moved path: where a request to the old template goes now."""

    old: PathTemplate
    new: str

    def target(self, raw_path: str) -> str | None:
        """The new path for `raw_path` (relative to the base path), or None when it is not the old one."""
        found = self.old.regex.match(raw_path)
        if found is None:
            return None
        values = {name: found.group(f"v{i}") for i, name in enumerate(self.old.variables)}
        return _VARIABLE.sub(lambda m: values[m.group(1)], self.new)


def moved_paths(table: Mapping[str, str] = MOVED) -> list[MovedPath]:
    """The table compiled; ValueError unless both templates bind the same variables."""
    out: list[MovedPath] = []
    for old, new in table.items():
        old_template = PathTemplate.parse(old)
        if set(old_template.variables) != set(PathTemplate.parse(new).variables):
            raise ValueError(f"moved path {old!r} -> {new!r}: both must bind the same variables")
        out.append(MovedPath(old_template, new))
    return out


def moved_target(moved: Sequence[MovedPath], raw_path: str) -> str | None:
    """Where `raw_path` moved to, or None."""
    for entry in moved:
        target = entry.target(raw_path)
        if target is not None:
            return target
    return None
