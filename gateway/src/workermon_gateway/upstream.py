"""The gateway's gRPC channels to the suite, calling any method by its descriptor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc

from workermon_core.client import MAX_RECEIVE_BYTES
from workermon_core.context import REQUEST_ID_HEADER
from workermon_core.targets import channel_target

# Longer than the longest wait a service does on purpose (CancelJob waits up to 60 s for a worker).
DEFAULT_DEADLINE_SECONDS = 65.0
HEALTH_DEADLINE_SECONDS = 2.0


def grpc_path(method: MethodDescriptor) -> str:
    """'/workermon.monitor.v1.MonitorService/GetOverview'."""
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> type[Message]:
    """The generated class of the method's request message."""
    return GetMessageClass(method.input_type)


def response_class(method: MethodDescriptor) -> type[Message]:
    """The generated class of the method's response message."""
    return GetMessageClass(method.output_type)


def _metadata(token: str | None, request_id: str | None) -> grpc.aio.Metadata:
    metadata = grpc.aio.Metadata()
    if token:
        metadata.add("authorization", f"Bearer {token}")
    if request_id:
        metadata.add(REQUEST_ID_HEADER, request_id)
    return metadata


Target = str | Callable[[], str]


class Upstream:
    """Lazily opened, kept-referenced channels to the suite: one `target` for every service, or, with
    `route`, each gRPC service (by full name) at its own target (one channel per distinct address; a
    list of replicas or a DNS name is balanced, see workermon_core.targets)."""

    def __init__(
        self,
        target: Target,
        *,
        route: Callable[[str], Target] | None = None,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    ) -> None:
        self._target = target
        self._route = route
        self._deadline = deadline_seconds
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[str, Any] = {}
        self._raw_callables: dict[str, Any] = {}

    @property
    def target(self) -> str:
        """The address every service not routed elsewhere is reached at."""
        return self._target() if callable(self._target) else self._target

    def target_of(self, service: str) -> str:
        """The address of a gRPC service (full name)."""
        if self._route is None:
            return self.target
        found = self._route(service)
        return found() if callable(found) else found

    def channel_of(self, service: str) -> grpc.aio.Channel:
        """The channel to a service, opened on first use (and held: a collected aio channel closes
        under its calls)."""
        address = self.target_of(service)
        channel = self._channels.get(address)
        if channel is None:
            resolved, balanced = channel_target(address)
            options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_RECEIVE_BYTES)]
            if balanced:
                options.append(("grpc.lb_policy_name", "round_robin"))
            channel = self._channels[address] = grpc.aio.insecure_channel(resolved, options=options)
        return channel

    def _callable(self, method: MethodDescriptor) -> Any:
        path = grpc_path(method)
        found = self._callables.get(path)
        if found is None:
            response = response_class(method)
            channel = self.channel_of(method.containing_service.full_name)
            make = channel.unary_stream if method.server_streaming else channel.unary_unary
            found = make(
                path,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=response.FromString,
            )
            self._callables[path] = found
        return found

    async def unary(
        self,
        method: MethodDescriptor,
        request: Message,
        *,
        token: str | None,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the service
    ) -> Message:
        """Call a unary method with the caller's token and request id; raises grpc.aio.AioRpcError."""
        call = self._callable(method)
        result: Message = await call(
            request, metadata=_metadata(token, request_id), timeout=timeout or self._deadline
        )
        return result

    async def unary_bytes(
        self,
        method: MethodDescriptor,
        request: Message,
        *,
        token: str | None,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the service
    ) -> bytes:
        """Like `unary`, but the reply as it came on the wire (the caller decodes it only if it must)."""
        path = grpc_path(method)
        call = self._raw_callables.get(path)
        if call is None:
            call = self.channel_of(method.containing_service.full_name).unary_unary(
                path,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=None,
            )
            self._raw_callables[path] = call
        result: bytes = await call(
            request, metadata=_metadata(token, request_id), timeout=timeout or self._deadline
        )
        return result

    async def server_stream(
        self,
        method: MethodDescriptor,
        request: Message,
        *,
        token: str | None,
        request_id: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline, sent to the service
    ) -> AsyncIterator[Message]:
        """Call a server-streaming method; yields its messages until it ends (no deadline unless given)."""
        call = self._callable(method)
        stream = call(request, metadata=_metadata(token, request_id), timeout=timeout)
        try:
            async for message in stream:
                yield message
        finally:
            stream.cancel()

    async def health(self, service_name: str, deadline: float = HEALTH_DEADLINE_SECONDS) -> str:
        """grpc.health.v1 status of a service: SERVING, NOT_SERVING, SERVICE_UNKNOWN, or UNREACHABLE."""
        stub = health_pb2_grpc.HealthStub(self.channel_of(service_name))
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service_name), timeout=deadline)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return "UNREACHABLE"
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    async def close(self) -> None:
        """Close the channels (a later call opens new ones)."""
        channels, self._channels = list(self._channels.values()), {}
        self._callables.clear()
        self._raw_callables.clear()
        for channel in channels:
            await channel.close()
