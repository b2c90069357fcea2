"""Calls from one service of the suite to another: a lazily opened channel and the token to present."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import grpc

from . import context
from .auth import TokenAuthority
from .client import open_channel

StubT = TypeVar("StubT")


class ServiceTokens:
    """Tokens a service presents to its peers: its own identity, or the identity of the caller it serves.

    Acting on behalf of the caller means the next service checks the same role and records the same
    actor (a command's requested_by is the operator, not "monitor"). Either way the token names this
    service in its `act` claim: that is what admits it to RPCs kept for the suite's own services
    (ROLE_SERVICE). Tokens are minted once and reused until half their life is gone, so a hot path does
    not sign a JWT per call.
    """

    def __init__(
        self, authority: TokenAuthority, subject: str, role: str, ttl_seconds: float = 300.0
    ) -> None:
        self._authority = authority
        self._subject = subject
        self._role = role
        self._ttl = ttl_seconds
        # (subject, role) -> (token, reuse until (monotonic), minted at (wall clock)).
        self._minted: dict[tuple[str, str], tuple[str, float, float]] = {}

    def _token(self, subject: str, role: str) -> str:
        now = time.monotonic()
        cached = self._minted.get((subject, role))
        if cached is not None and cached[1] > now and not self._revoked(subject, cached[2]):
            return cached[0]
        # Never later than the token's own `iat` (milliseconds, rounded down).
        minted_at = math.floor(time.time() * 1000) / 1000
        token = self._authority.mint(subject, role, ttl_seconds=self._ttl, actor=self._subject)
        if len(self._minted) > 1024:
            self._minted.clear()
        self._minted[(subject, role)] = (token, now + self._ttl / 2, minted_at)
        return token

    def _revoked(self, subject: str, minted_at: float) -> bool:
        # A user who logged out everywhere and in again is served with a token minted after that:
        # the one kept from before would be refused by the next service.
        revocations = self._authority.revocations
        return revocations is not None and revocations.revoked(subject, minted_at)

    def own(self) -> str:
        """A token naming this service."""
        return self._token(self._subject, self._role)

    def on_behalf(self) -> str:
        """A token naming the caller of the RPC being served, or this service outside of one."""
        who = context.principal.get()
        if who is None:
            return self.own()
        return self._token(who.subject, who.role)


class LocalAddress:
    """This process's own gRPC address, where services hosted together reach each other.

    Known for certain only once the server has bound (port 0 picks one): pass `bind` as the
    ServiceSpec's `bound` hook and the address as a Peer's target.
    """

    def __init__(self, host: str, port: int) -> None:
        # A wildcard bind is reached on loopback.
        self.host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]", "") else host
        self.port = port

    def bind(self, port: int) -> None:
        """Record the port the server bound."""
        self.port = port

    def __call__(self) -> str:
        return f"{self.host}:{self.port}"


class Peer(Generic[StubT]):
    """A typed client of another service, opened on first use and kept referenced until closed.

    `target` is host:port, or a callable giving it (read when the channel opens).
    """

    def __init__(
        self,
        target: str | Callable[[], str],
        stub_class: Callable[[grpc.aio.Channel], StubT],
        token: Callable[[], str],
    ) -> None:
        self._target = target
        self._stub_class = stub_class
        self._token = token
        self._channel: grpc.aio.Channel | None = None
        self._stub: StubT | None = None

    @property
    def target(self) -> str:
        """host:port this peer dials."""
        return self._target() if callable(self._target) else self._target

    @property
    def stub(self) -> StubT:
        """The stub, opening the channel on first use."""
        if self._stub is None:
            # Held here: a garbage-collected aio channel would close under its stub.
            self._channel = open_channel(self.target, self._token)
            self._stub = self._stub_class(self._channel)
        return self._stub

    async def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None
