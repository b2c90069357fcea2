"""Typed gRPC clients for calls between services (and from tools): token and request id attached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from . import context

StubT = TypeVar("StubT")


class _Metadata(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Adds `authorization` and carries the current request id into the next service."""

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _details(self, details: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata["authorization"] = f"Bearer {self._token()}"
        rid = context.request_id.get()
        if rid:
            metadata[context.REQUEST_ID_HEADER] = rid
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)

    async def intercept_stream_stream(self, continuation: Any, details: Any, request_iterator: Any) -> Any:
        return await continuation(self._details(details), request_iterator)


def open_channel(target: str, token: str | Callable[[], str]) -> grpc.aio.Channel:
    """An insecure aio channel to `target` that authenticates every call."""
    provider = token if callable(token) else (lambda: token)
    return grpc.aio.insecure_channel(target, interceptors=[_Metadata(provider)])


def stub(stub_class: Callable[[grpc.aio.Channel], StubT], channel: grpc.aio.Channel) -> StubT:
    """A typed stub on `channel` (the generated *Stub classes are the stub_class)."""
    return stub_class(channel)
