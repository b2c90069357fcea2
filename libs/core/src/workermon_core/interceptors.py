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
from .errors import DomainError, error_domain, to_status, translate
from .refusals import RefusalAudit

log = structlog.get_logger("workermon.rpc")

# Infrastructure RPCs stay open so probes and tooling work without a token.
OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")

Behaviour = Callable[..., Any]
Wrap = Callable[[Behaviour, str], Behaviour]


def _wrap_handler(handler: grpc.RpcMethodHandler, method: str, wrap: Wrap) -> Any:
    """Return a copy of `handler` whose behaviour is wrapped, whatever its streaming kind."""
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, method),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _around(
    behaviour: Behaviour,
    before: Callable[[Any], None],
    on_error: Callable[[BaseException, Any], Awaitable[None]],
    on_refused: Callable[[BaseException, Any], Awaitable[None]] | None = None,
) -> Behaviour:
    """Run `before` then the behaviour; hand any exception to `on_error` (which aborts the RPC), and
    one raised by `before` (the caller refused) first to `on_refused` with the request."""
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, ctx: Any) -> AsyncIterator[Any]:
            try:
                try:
                    before(ctx)
                except Exception as exc:
                    if on_refused is not None:
                        await on_refused(exc, request if isinstance(request, Message) else None)
                    raise
                async for item in behaviour(request, ctx):
                    yield item
            except BaseException as exc:
                await on_error(exc, ctx)

        return stream

    async def unary(request: Any, ctx: Any) -> Any:
        try:
            try:
                before(ctx)
            except Exception as exc:
                if on_refused is not None:
                    await on_refused(exc, request if isinstance(request, Message) else None)
                raise
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
