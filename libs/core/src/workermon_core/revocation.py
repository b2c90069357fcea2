"""Token revocation shared by every process: "tokens of this subject issued before T are void".

Tokens are verified locally in each service, so a removed user or a "log out everywhere" has to reach
every process. The record lives in the suite's Redis, one hash `{prefix}:auth:revoked` mapping a
subject to the time (Unix seconds, fractional) before which its tokens are refused. Each process keeps
a copy (`RevocationList`) that `TokenAuthority.verify` consults without I/O, refreshed from Redis every
few seconds (`RevocationSync`, WORKERMON_REVOCATION_REFRESH_SECONDS): a revocation takes effect
everywhere within that period, and at once in the process that wrote it.

While Redis cannot be read, the last copy read keeps applying: revocations already seen are never
forgotten, calls are not failed for it, and one warning says so (a revocation written meanwhile cannot
be seen until Redis answers again: Redis is the record). Entries are kept as long as a token minted
before them could still be presented (`REVOCATION_RETENTION_SECONDS`), then dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog

from .redis_store import AnyRedis, key_prefix

log = structlog.get_logger("workermon.revocation")

# Longer than any token the suite mints for people (refresh tokens: at most 30 days); `workermon token`
# can mint longer ones, which a revocation older than this no longer voids (the CLI says so).
REVOCATION_RETENTION_SECONDS = 90 * 86_400


def revocation_key(prefix: str) -> str:
    """The Redis hash of revocations for the suite's key prefix."""
    return f"{key_prefix(prefix)}:auth:revoked"


class RevocationList:
    """The revocations this process knows: subject -> tokens issued before this time are void."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._not_before: dict[str, float] = {}
        self._clock = clock
        # When the copy was last read from Redis (None: never yet).
        self.synced_at: float | None = None

    def not_before(self, subject: str) -> float | None:
        """The time before which `subject`'s tokens are void, if any."""
        return self._not_before.get(subject)

    def revoked(self, subject: str, issued_at: float | None) -> bool:
        """Whether a token of `subject` issued at `issued_at` is void (one without `iat` is, when the
        subject has any revocation: nothing shows it is newer)."""
        cutoff = self._not_before.get(subject)
        if cutoff is None:
            return False
        return issued_at is None or issued_at < cutoff

    def note(self, subject: str, at: float) -> None:
        """Apply a revocation in this process at once (the one that wrote it)."""
        if at > self._not_before.get(subject, 0.0):
            self._not_before[subject] = at

    def replace(self, entries: Mapping[str, float]) -> None:
        """Take the record as read from Redis (keeping local notes the record does not hold yet)."""
        merged = dict(entries)
        for subject, at in self._not_before.items():
            if at > merged.get(subject, 0.0):
                merged[subject] = at
        self._not_before = merged
        self.synced_at = self._clock()

    def __len__(self) -> int:
        return len(self._not_before)


class RevocationStore:
    """Reading and writing the revocation record in the suite's Redis."""

    def __init__(
        self,
        redis: AnyRedis,
        prefix: str,
        revocations: RevocationList | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.key = revocation_key(prefix)
        self.revocations = revocations
        self._clock = clock

    async def revoke(self, subject: str) -> float:
        """Void every token of `subject` issued until now (in every process within seconds); the time."""
        at = self._clock()
        await self.redis.hset(self.key, subject, repr(at))
        if self.revocations is not None:
            self.revocations.note(subject, at)
        log.info("tokens_revoked", subject=subject)
        return at

    async def read(self) -> dict[str, float]:
        """The record, dropping entries older than any token they could still void."""
        raw = await self.redis.hgetall(self.key)
        horizon = self._clock() - REVOCATION_RETENTION_SECONDS
        entries: dict[str, float] = {}
        stale: list[bytes | str] = []
        for field, value in raw.items():
            subject = field.decode() if isinstance(field, bytes) else str(field)
            try:
                at = float(value)
            except ValueError:
                # A damaged entry voids that subject's tokens from now on, rather than none of them.
                at = self._clock()
            if at < horizon:
                stale.append(field)
            else:
                entries[subject] = at
        if stale:
            await self.redis.hdel(self.key, *stale)
        return entries

    async def sync(self) -> None:
        """Refresh this process's copy from Redis (raises while Redis cannot be read; the copy stays)."""
        assert self.revocations is not None, "a store without a list has nothing to refresh"
        self.revocations.replace(await self.read())
