"""Token revocation: the shared record in Redis, each process's copy, and what verify makes of it;
refresh tokens, and the reserved subject `system`."""

from __future__ import annotations

import time

import jwt
import pytest
import redis.asyncio as aioredis

from tests.support.fakes import TEST_SECRET
from workermon_core import context
from workermon_core.auth import Principal, TokenAuthority
from workermon_core.errors import Unauthenticated
from workermon_core.peer import ServiceTokens
from workermon_core.redis_store import connect
from workermon_core.revocation import REVOCATION_RETENTION_SECONDS, RevocationList, RevocationStore


def _past(moment: float) -> None:
    """Wait for the next millisecond after `moment`: tokens carry `iat` in milliseconds, so one minted
    after a revocation is minted in a later one (a login takes far longer than that)."""
    while time.time() < moment + 0.001:
        pass


def _refused(authority: TokenAuthority, token: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        authority.verify(token)
    return caught.value


async def test_a_revocation_voids_earlier_tokens_in_another_process(
    redis: aioredis.Redis, prefix: str
) -> None:
    # Two processes: one writes the revocation (the gateway, the CLI), the other verifies.
    writer_list, reader_list = RevocationList(), RevocationList()
    writer = RevocationStore(redis, prefix, writer_list)
    reader = RevocationStore(redis, prefix, reader_list)
    issuing = TokenAuthority(TEST_SECRET, revocations=writer_list)
    verifying = TokenAuthority(TEST_SECRET, revocations=reader_list)
    old = issuing.mint("mallory", "operator")
    other = issuing.mint("trent", "operator")
    assert verifying.verify(old).subject == "mallory"  # now cached

    revoked_at = await writer.revoke("mallory")
    # The writer refuses at once; the other process once it has read the record again.
    assert _refused(issuing, old).reason == "TOKEN_REVOKED"
    assert verifying.verify(old).subject == "mallory"
    await reader.sync()
    refused = _refused(verifying, old)
    assert refused.reason == "TOKEN_REVOKED" and refused.metadata["check"] == "revocation"
    # Only that subject, and only tokens issued before: a fresh login works straight away.
    assert verifying.verify(other).subject == "trent"
    _past(revoked_at)
    assert verifying.verify(issuing.mint("mallory", "operator")).subject == "mallory"


async def test_redis_down_keeps_the_last_known_revocations(redis: aioredis.Redis, prefix: str) -> None:
    revocations = RevocationList()
    authority = TokenAuthority(TEST_SECRET, revocations=revocations)
    token = authority.mint("oscar", "viewer")
    await RevocationStore(redis, prefix).revoke("oscar")
    await RevocationStore(redis, prefix, revocations).sync()
    dead = connect("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Exception):  # noqa: B017 - whichever connection error redis-py raises
            await RevocationStore(dead, prefix, revocations).sync()
    finally:
        await dead.aclose()
    # The copy stays: the revoked token stays refused, and calls of others are not failed.
    assert _refused(authority, token).reason == "TOKEN_REVOKED"
    assert authority.verify(authority.mint("peggy", "viewer")).subject == "peggy"


async def test_old_entries_are_dropped_from_the_record(redis: aioredis.Redis, prefix: str) -> None:
    store = RevocationStore(redis, prefix)
    await redis.hset(store.key, "ancient", repr(time.time() - REVOCATION_RETENTION_SECONDS - 60))
    await store.revoke("recent")
    assert set(await store.read()) == {"recent"}
    assert await redis.hexists(store.key, "ancient") == 0


def test_a_token_without_iat_is_void_once_its_subject_is_revoked() -> None:
    revocations = RevocationList()
    authority = TokenAuthority(TEST_SECRET, revocations=revocations)
    now = int(time.time())
    claims = {"sub": "victor", "role": "viewer", "iss": "workermon", "exp": now + 60}
    no_iat = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    assert authority.verify(no_iat).subject == "victor"
    revocations.note("victor", time.time())
    assert _refused(authority, no_iat).reason == "TOKEN_REVOKED"


def test_refresh_tokens_buy_nothing_but_refreshes() -> None:
    revocations = RevocationList()
    authority = TokenAuthority(TEST_SECRET, revocations=revocations)
    refresh = authority.mint_refresh("wendy", 600)
    grant = authority.verify_refresh(refresh)
    assert grant.subject == "wendy" and 590 < grant.expires_at - time.time() <= 600
    assert _refused(authority, refresh).metadata["check"] == "type"
    with pytest.raises(Unauthenticated) as not_refresh:
        authority.verify_refresh(authority.mint("wendy", "viewer"))
    assert not_refresh.value.metadata["check"] == "type"
    revocations.note("wendy", time.time())
    with pytest.raises(Unauthenticated) as revoked:
        authority.verify_refresh(refresh)
    assert revoked.value.reason == "TOKEN_REVOKED"


def test_the_system_subject_is_reserved() -> None:
    authority = TokenAuthority(TEST_SECRET)
    with pytest.raises(ValueError, match="reserved"):
        authority.mint("system", "admin")
    now = int(time.time())
    forged = jwt.encode(
        {"sub": "system", "role": "admin", "iss": "workermon", "iat": now, "exp": now + 60},
        TEST_SECRET,
        algorithm="HS256",
    )
    refused = _refused(authority, forged)
    assert refused.reason == "TOKEN_INVALID" and refused.metadata["check"] == "subject"


def test_mint_takes_extra_claims_but_not_its_own() -> None:
    authority = TokenAuthority(TEST_SECRET)
    token = authority.mint("xavier", "operator", tenant="acme")
    assert jwt.decode(token, TEST_SECRET, algorithms=["HS256"], issuer="workermon")["tenant"] == "acme"
    with pytest.raises(ValueError, match="sub"):
        authority.mint("xavier", "operator", sub="someone-else")
    # The service identity and the worker binding go through their own arguments, which check them.
    with pytest.raises(ValueError, match="act"):
        authority.mint("xavier", "operator", act="alice")


def test_a_service_mints_again_for_a_caller_revoked_since() -> None:
    revocations = RevocationList()
    authority = TokenAuthority(TEST_SECRET, revocations=revocations)
    tokens = ServiceTokens(authority, "monitor", "viewer")
    who = context.principal.set(Principal(subject="yara", role="operator", expires_at=time.time() + 60))
    try:
        before = tokens.on_behalf()
        assert tokens.on_behalf() == before  # reused while fresh
        revoked_at = time.time()
        revocations.note("yara", revoked_at)
        _past(revoked_at)
        # She logged in again (a token issued after the revocation): the next service must accept what
        # is presented for her, so the kept token is not reused.
        after = tokens.on_behalf()
    finally:
        context.principal.reset(who)
    assert after != before
    assert _refused(authority, before).reason == "TOKEN_REVOKED"
    assert authority.verify(after).subject == "yara"
