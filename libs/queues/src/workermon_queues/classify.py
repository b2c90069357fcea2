"""Failure-reason classification: map a failed job's message to a small set of categories.

Rules are (regex, category) pairs tried in order, case-insensitively; the first match wins and a
message nothing matches is `unknown`. Configured rules (WORKERMON_FAILURE_RULES, a JSON list of
{"pattern": ..., "category": ...}) go before the defaults, so a team can re-file any message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

__all__ = ["DEFAULT_RULES", "UNKNOWN", "FailureClassifier", "parse_rules"]

UNKNOWN = "unknown"

# Order matters: "Navigation timeout exceeded" is a timeout before it is a browser problem, "invalid
# token" is auth before it is validation, and "429" must not fall through to a generic category.
DEFAULT_RULES: tuple[tuple[str, str], ...] = (
    (r"timeout|\btimed?\s?out\b|etimedout|deadline exceeded", "timeout"),
    (r"\b429\b|rate.?limit|too many requests|throttl|quota exceeded", "rate_limit"),
    (
        r"\b40[13]\b|unauthori[sz]ed|forbidden|invalid (?:api )?(?:token|key|credentials)|token expired"
        r"|expired token|authentication|not authenticated|permission denied|access denied",
        "auth",
    ),
    (
        r"econnrefused|econnreset|econnaborted|enotfound|eai_again|ehostunreach|enetunreach|epipe"
        r"|socket hang up|connection (?:refused|reset|closed|aborted)|network error|getaddrinfo"
        r"|net::err_|\bdns\b|fetch failed",
        "network",
    ),
    (
        r"puppeteer|playwright|chromium|chrome|browser|page crashed|navigation|target closed"
        r"|protocol error|execution context was destroyed",
        "browser",
    ),
    (r"\b400\b|\b422\b|validation|invalid|schema|bad request|unprocessable", "validation"),
)

_CATEGORY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_CACHE_SIZE = 4096


class FailureClassifier:
    """Classifies failure reasons by the first matching rule (`rules` first, then the defaults)."""

    def __init__(self, rules: Sequence[tuple[str, str]] = (), *, defaults: bool = True) -> None:
        ordered = [*rules, *(DEFAULT_RULES if defaults else ())]
        self.rules: list[tuple[re.Pattern[str], str]] = []
        for i, (pattern, category) in enumerate(ordered):
            self.rules.append((_compile(pattern, f"rule {i}"), _category(category, f"rule {i}")))
        # Failure messages repeat a lot (the same error across many jobs): remember recent answers.
        self._cache: dict[str, str] = {}

    @property
    def categories(self) -> list[str]:
        """Every category this classifier can return, in rule order, ending with `unknown`."""
        return list(dict.fromkeys([c for _, c in self.rules] + [UNKNOWN]))

    def classify(self, reason: str | None) -> str:
        """The category of a failure message (`unknown` when no rule matches or it is empty)."""
        if not reason:
            return UNKNOWN
        found = self._cache.get(reason)
        if found is not None:
            return found
        found = next((category for regex, category in self.rules if regex.search(reason)), UNKNOWN)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[reason] = found
        return found


def parse_rules(text: str) -> list[tuple[str, str]]:
    """Parse WORKERMON_FAILURE_RULES: a JSON list of {"pattern": regex, "category": name}.

    Raises ValueError naming the offending entry. Blank text means no rules.
    """
    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError('must be a JSON list of {"pattern", "category"} objects')
    rules: list[tuple[str, str]] = []
    for i, item in enumerate(data):
        where = f"[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f'{where}: expected an object with "pattern" and "category", got {item!r}')
        unknown_keys = set(item) - {"pattern", "category"}
        if unknown_keys:
            raise ValueError(f"{where}: unexpected key(s) {sorted(unknown_keys)}")
        pattern, category = item.get("pattern"), item.get("category")
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f'{where}: "pattern" must be a non-empty string')
        if not isinstance(category, str):
            raise ValueError(f'{where}: "category" must be a string')
        _compile(pattern, where)
        rules.append((pattern, _category(category, where)))
    return rules


def _compile(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"{where}: invalid regex {pattern!r}: {exc}") from exc


def _category(category: str, where: str) -> str:
    if not _CATEGORY.match(category):
        raise ValueError(f"{where}: category {category!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return category
