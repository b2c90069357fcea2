"""Typed gRPC clients for calls between services (and from tools): token and request id attached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from . import context
from .targets import channel_target

StubT = TypeVar("StubT")
MAX_RECEIVE_BYTES = 32 * 1024 * 1024


class _AddMetadata:
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


# grpc.aio files each interceptor under one call kind only, so each kind needs its own class.
class _UnaryUnary(_AddMetadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_AddMetadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_AddMetadata, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_AddMetadata, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def open_channel(target: str, token: str | Callable[[], str]) -> grpc.aio.Channel:
    """An insecure aio channel to `target` (one server, a list or a DNS name: `channel_target`) that
    authenticates every call."""
    provider = token if callable(token) else (lambda: token)
    kinds = (_UnaryUnary, _UnaryStream, _StreamUnary, _StreamStream)
    resolved, balanced = channel_target(target)
    # A job's whole payload may be asked for (GetJob with full=true): allow more than the 4 MiB default.
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
    if balanced:
        options.append(("grpc.lb_policy_name", "round_robin"))
    interceptors = [kind(provider) for kind in kinds]
    return grpc.aio.insecure_channel(resolved, interceptors=interceptors, options=options)


def stub(stub_class: Callable[[grpc.aio.Channel], StubT], channel: grpc.aio.Channel) -> StubT:
    """A typed stub on `channel` (the generated *Stub classes are the stub_class)."""
    return stub_class(channel)
