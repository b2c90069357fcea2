"""Server interceptors: request id and logging, error mapping, and per-RPC role checks."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import Message

from . import context
from .auth import TokenAuthority, authorize, bearer_token
from .errors import DomainError, InvalidArgument, error_domain, to_status, translate
from .refusals import RefusalAudit

log = structlog.get_logger("workermon.rpc")

# Infrastructure RPCs stay open so probes and tooling work without a token.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Behaviour = Callable[..., Any]
Wrap = Callable[[Behaviour, str], Behaviour]


class Undecodable:
    """A request message that could not be parsed (nested past protobuf's depth limit, or corrupt).

    gRPC reports a deserializer that raises as UNKNOWN, before any interceptor runs; so the
    deserializer returns this instead, and the wrapped behaviour refuses it as INVALID_ARGUMENT after
    the caller's token was checked.
    """

    def __init__(self, error: Exception) -> None:
        self.error = error

    def refusal(self) -> InvalidArgument:
        """The error the caller gets."""
        return InvalidArgument("request", f"cannot be decoded: {self.error}", reason="UNDECODABLE_REQUEST")


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception as exc:
            return Undecodable(exc)

    return decode


def _wrap_handler(handler: grpc.RpcMethodHandler, method: str, wrap: Wrap) -> Any:
    """Return a copy of `handler` whose behaviour is wrapped, whatever its streaming kind."""
    options = {
        "request_deserializer": _lenient(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, method), **options)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, method), **options)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(_decoded_stream(handler.stream_unary), method), **options
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(_decoded_stream(handler.stream_stream), method), **options
    )


def _decoded_stream(behaviour: Behaviour) -> Behaviour:
    """The behaviour of a client-streaming RPC, fed an iterator that raises on an undecodable message."""

    async def refuse_undecodable(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in requests:
            if isinstance(item, Undecodable):
                raise item.refusal()
            yield item

    if inspect.isasyncgenfunction(behaviour):

        async def stream(requests: AsyncIterator[Any], ctx: Any) -> AsyncIterator[Any]:
            async for item in behaviour(refuse_undecodable(requests), ctx):
                yield item

        return stream

    async def unary(requests: AsyncIterator[Any], ctx: Any) -> Any:
        return await behaviour(refuse_undecodable(requests), ctx)

    return unary


def _around(
    behaviour: Behaviour,
    before: Callable[[Any], None],
    on_error: Callable[[BaseException, Any], Awaitable[None]],
    on_refused: Callable[[BaseException, Any], Awaitable[None]] | None = None,
) -> Behaviour:
    """Run `before` then the behaviour; hand any exception to `on_error` (which aborts the RPC), and
    one raised by `before` (the caller refused) first to `on_refused` with the request."""

    def refusal(request: Any, ctx: Any) -> Exception | None:
        # Synchronous on purpose: an admitted call (a beat) pays no extra coroutine for this check.
        try:
            before(ctx)
        except Exception as exc:
            return exc
        if isinstance(request, Undecodable):
            raise request.refusal()
        return None

    async def refused(exc: Exception, request: Any) -> Exception:
        if on_refused is not None:
            await on_refused(exc, request if isinstance(request, Message) else None)
        return exc

    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, ctx: Any) -> AsyncIterator[Any]:
            try:
                if (exc := refusal(request, ctx)) is not None:
                    raise await refused(exc, request)
                async for item in behaviour(request, ctx):
                    yield item
            except BaseException as exc:
                await on_error(exc, ctx)

        return stream

    async def unary(request: Any, ctx: Any) -> Any:
        try:
            if (exc := refusal(request, ctx)) is not None:
                raise await refused(exc, request)
            return await behaviour(request, ctx)
        except BaseException as exc:
            await on_error(exc, ctx)

    return unary


class ServerInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """One pass per RPC: bind a request id, check the token and role, log, and map errors.

    Folded into one interceptor because a beat is the hottest path in the suite and each layer of
    wrapping costs a coroutine frame per call. Each method's handler is wrapped once and cached; the
    per-call data (metadata, start time) is read inside the call. An attempt refused here at an audited
    action is handed to `refusals`, which records it in the audit log.
    """

    def __init__(
        self, authority: TokenAuthority, roles: dict[str, int], refusals: RefusalAudit | None = None
    ) -> None:
        self._authority = authority
        self._roles = roles
        self._refusals = refusals
        self._wrapped: dict[str, Any] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        method: str = details.method
        cached = self._wrapped.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        wrapped = _wrap_handler(handler, method, self._wrap)
        self._wrapped[method] = wrapped
        return wrapped

    def _wrap(self, behaviour: Behaviour, method: str) -> Behaviour:
        required = self._roles.get(method, 0)
        domain = error_domain(method)

        def before(ctx: grpc.aio.ServicerContext) -> None:
            metadata = ctx.invocation_metadata() or ()
            rid = (
                next((str(v) for k, v in metadata if k == context.REQUEST_ID_HEADER), None)
                or uuid.uuid4().hex
            )
            context.request_id.set(rid)
            structlog.contextvars.bind_contextvars(request_id=rid, rpc=method)
            principal = self._authority.verify(bearer_token(metadata))
            context.principal.set(principal)
            authorize(principal, method, required)

        async def on_error(exc: BaseException, ctx: grpc.aio.ServicerContext) -> None:
            if not isinstance(exc, Exception) or isinstance(exc, grpc.aio.AbortError):
                raise exc  # cancellation, shutdown, or a status the servicer already set
            rid = context.request_id.get() or "?"
            err = translate(exc)
            if err is None:
                log.exception("rpc_failed")
                err = DomainError("internal error; see the server log for request " + rid)
            elif err.code != grpc.StatusCode.UNAVAILABLE:
                log.info("rpc_refused", code=err.code.name, reason=err.reason, message=err.message)
            else:
                log.warning("rpc_unavailable", reason=err.reason, message=err.message)
            status = to_status(err, domain)
            await ctx.abort(status.code, status.details, status.trailing_metadata)

        refusals = self._refusals
        if refusals is None or not refusals.audited(method):
            return _around(behaviour, before, on_error)

        async def on_refused(exc: BaseException, request: Message | None) -> None:
            err = translate(exc)
            if err is not None and err.code in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            ):
                await refusals.record(method, context.principal.get(), err, request)

        return _around(behaviour, before, on_error, on_refused)
