"""Every error the gateway sends, in one shape, with the standard gRPC to HTTP status mapping.

`{"error": {"code": <http status>, "status": "<GRPC_CODE>", "message": "...", "details": [...]}}`, the
details being google.rpc messages (ErrorInfo, BadRequest) in their JSON form with an "@type".
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from starlette.responses import JSONResponse

from workermon_core.errors import GATEWAY_DOMAIN, DomainError, InvalidArgument, NotFound

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code (google.rpc mapping; anything unlisted is 500)."""
    return HTTP_STATUS.get(code, 500)


def _any_json(message: Message) -> dict[str, Any]:
    packed = any_pb2.Any()
    packed.Pack(message)
    return json_format.MessageToDict(packed)


def error_info_json(reason: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """An ErrorInfo detail of the gateway's own, in its JSON form."""
    return _any_json(error_details_pb2.ErrorInfo(reason=reason, domain=GATEWAY_DOMAIN, metadata=metadata))


def error_response(
    code: grpc.StatusCode,
    message: str,
    details: list[dict[str, Any]] | None = None,
    *,
    http: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The error shape for a gRPC code (or an explicit HTTP status, for 405 and the like)."""
    status = http if http is not None else http_status(code)
    extra = dict(headers or {})
    if status == 401:
        extra.setdefault("WWW-Authenticate", "Bearer")
    body = {"error": {"code": status, "status": code.name, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=extra)


def domain_error_response(
    err: DomainError, *, http: int | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Render an error the gateway raised itself, with ErrorInfo (and BadRequest naming a bad field)."""
    details = [error_info_json(err.reason, err.metadata)]
    if isinstance(err, InvalidArgument):
        violation = error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.description)
        details.append(_any_json(error_details_pb2.BadRequest(field_violations=[violation])))
    return error_response(err.code, err.message, details, http=http, headers=headers)


def rpc_error_response(exc: grpc.aio.AioRpcError) -> JSONResponse:
    """Render a failed upstream call with the service's own message and rich details."""
    code = exc.code()
    details: list[dict[str, Any]] = []
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        status = None
    if status is not None:
        for detail in status.details:
            try:
                details.append(json_format.MessageToDict(detail))
            except (TypeError, KeyError, json_format.SerializeToJsonError):
                # A detail type this process does not know: its "@type" alone still tells the client.
                details.append({"@type": detail.type_url})
    message = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE and not details:
        # Transport failure, not a service's answer: say which side failed, not the socket's words.
        message = f"the Worker Monitor services cannot be reached: {message}"
        details = [error_info_json("UPSTREAM_UNAVAILABLE")]
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not details:
        details = [error_info_json("UPSTREAM_DEADLINE")]
    return error_response(code, message, details)


def not_found(path: str) -> JSONResponse:
    """404 for a path no route serves."""
    return domain_error_response(NotFound(f"no route for {path}", reason="ROUTE_NOT_FOUND"))


def method_not_allowed(method: str, path: str, allowed: list[str]) -> JSONResponse:
    """405 naming the methods the path takes."""
    err = DomainError(
        f"{method} is not allowed on {path}; use {', '.join(allowed)}",
        reason="METHOD_NOT_ALLOWED",
        metadata={"allowed": ",".join(allowed)},
    )
    err.code = grpc.StatusCode.UNIMPLEMENTED
    response = domain_error_response(err, http=405)
    response.headers["Allow"] = ", ".join(allowed)
    return response


def internal_error(request_id: str) -> JSONResponse:
    """500 naming the request id to look up in the gateway log, never a stack trace."""
    err = DomainError(f"internal error; see the gateway log for request {request_id}")
    err.metadata["request_id"] = request_id
    return domain_error_response(err)
