"""An identity provider's signing keys fetched from its JWKS URL (WORKERMON_JWKS_URL).

The keys are fetched once at start and kept for the response's `Cache-Control: max-age`, else for
WORKERMON_JWKS_TTL_SECONDS; when that has passed, the next verification starts a refetch. A token
naming a key id the set does not hold starts one too (a provider rotating its keys), but at most one
fetch runs at a time and at most one starts per WORKERMON_JWKS_MIN_REFETCH_SECONDS, so a caller
spraying random key ids costs one fetch per period, not one per request. A fetch runs in a thread
and never holds up a verification: the token that named the new key is refused once ("retry"), and
the next one, after the fetch, is checked against the new set. A failed fetch keeps the last good
keys (a provider outage does not lock everybody out); a successful one replaces the set, so keys the
provider dropped stop verifying.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from .auth import VerificationKey

log = structlog.get_logger("workermon.jwks")

# A key set is a few kilobytes; anything far larger is not one.
MAX_JWKS_BYTES = 1 << 20
# A max-age is obeyed within these bounds: not refetched more often than the refetch limit allows, and
# at least once a day whatever the provider says.
_MAX_AGE_CEILING = 86_400.0
_MAX_AGE_RE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)

Parser = Callable[[bytes, str], "list[VerificationKey]"]


def max_age(cache_control: str | None) -> float | None:
    """The max-age of a Cache-Control header, in seconds (None when it names none)."""
    match = _MAX_AGE_RE.search(cache_control or "")
    return float(match.group(1)) if match else None


def fetch_url(url: str, timeout: float) -> tuple[bytes, str | None]:
    """GET `url`: the body (at most MAX_JWKS_BYTES) and its Cache-Control header."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError(f"the key set is larger than {MAX_JWKS_BYTES} bytes")
        return body, response.headers.get("Cache-Control")


class JwksSource:
    """The current keys of a JWKS URL, refetched when stale or when a token names an unknown key id."""

    def __init__(
        self,
        url: str,
        parse: Parser,
        *,
        ttl_seconds: float = 3600.0,
        min_refetch_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fetch: Callable[[str, float], tuple[bytes, str | None]] = fetch_url,
    ) -> None:
        self.url = url
        self._parse = parse
        self.ttl = ttl_seconds
        self.min_refetch = min_refetch_seconds
        self.timeout = timeout_seconds
        self._clock = clock
        self._fetch = fetch
        self._keys: tuple[VerificationKey, ...] = ()
        self._lock = threading.Lock()
        self._expires_at = 0.0
        self._last_attempt: float | None = None
        self._running: threading.Thread | None = None
        # How many fetches were made (tests and the log read it).
        self.fetches = 0

    def keys(self) -> tuple[VerificationKey, ...]:
        """The keys held now; starts a refetch in the background when they are past their age."""
        if self._clock() >= self._expires_at:
            self._refetch_soon()
        return self._keys

    def unknown_kid(self, kid: str | None) -> bool:
        """A token named a key id the set does not hold: start a refetch unless one ran too recently.
        Whether one was started (or is running)."""
        started = self._refetch_soon()
        if started:
            log.info("jwks_refetch_for_unknown_kid", url=self.url, kid=kid)
        return started

    def load(self) -> bool:
        """Fetch now, in the calling thread (at start); whether it worked (failure keeps the old keys)."""
        with self._lock:
            self._last_attempt = self._clock()
        return self._run_fetch()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a fetch under way to finish (tests, shutdown)."""
        running = self._running
        if running is not None:
            running.join(timeout)

    def _refetch_soon(self) -> bool:
        now = self._clock()
        with self._lock:
            if self._running is not None and self._running.is_alive():
                return True
            if self._last_attempt is not None and now - self._last_attempt < self.min_refetch:
                return False
            self._last_attempt = now
            thread = threading.Thread(target=self._run_fetch, name="jwks-fetch", daemon=True)
            self._running = thread
        thread.start()
        return True

    def _run_fetch(self) -> bool:
        try:
            body, cache_control = self._fetch(self.url, self.timeout)
            keys = self._parse(body, self.url)
        except Exception as exc:
            # The last good keys stay: an identity provider being down must not lock everybody out.
            log.warning("jwks_fetch_failed", url=self.url, error=str(exc), keeping=len(self._keys))
            return False
        age = max_age(cache_control)
        ttl = self.ttl if age is None else min(max(age, self.min_refetch), _MAX_AGE_CEILING)
        with self._lock:
            self._keys = tuple(keys)
            self._expires_at = self._clock() + ttl
            self.fetches += 1
        log.info("jwks_fetched", url=self.url, keys=[k.kid for k in keys], ttl_seconds=ttl)
        return True
