"""Domain errors, and their one mapping to canonical gRPC codes with google.rpc.ErrorInfo details."""

from __future__ import annotations

import sqlite3

import grpc
import psycopg
import redis.exceptions
import sqlalchemy.exc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status


class DomainError(Exception):
    """An expected failure with a canonical code, a machine-readable reason and a human message."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    """A request field has a bad value; `field` names it (proto field path)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}", reason=reason, metadata={"field": field})
        self.field = field
        self.description = message


class NotFound(DomainError):
    """The named resource does not exist."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    """The resource to create exists already."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the request."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrent change won (e.g. a stale revision): read again, then retry."""

    code = grpc.StatusCode.ABORTED
    default_reason = "ABORTED"


class Unauthenticated(DomainError):
    """No valid credentials."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """Valid credentials whose role does not allow the request."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class ResourceExhausted(DomainError):
    """Too many requests from one caller (a rate limit); retrying later helps."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DomainError):
    """A dependency (Redis, the database, another service) cannot be reached; retrying may help."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class PeerError(DomainError):
    """Another service of the suite answered with an error: passed on with its code and reason."""

    def __init__(self, call: grpc.aio.AioRpcError) -> None:
        code = call.code()
        info = error_info(call)
        if code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
        ):
            if code is grpc.StatusCode.UNAVAILABLE and info is not None and info.reason:
                # The peer answered and said what it lacks (DATABASE_UNAVAILABLE, REDIS_UNAVAILABLE...).
                super().__init__(
                    call.details() or code.name, reason=info.reason, metadata=dict(info.metadata)
                )
                self.code = code
                return
            # Which peer failed matters to the operator; the peer's own transport words do not.
            super().__init__(
                f"a service this call needs is unavailable: {call.details()}", reason="PEER_UNAVAILABLE"
            )
            self.code = grpc.StatusCode.UNAVAILABLE
            return
        super().__init__(
            call.details() or code.name,
            reason=info.reason if info is not None and info.reason else code.name,
            metadata=dict(info.metadata) if info is not None else None,
        )
        self.code = code if code in _CODE_NUMBERS else grpc.StatusCode.INTERNAL


def translate(exc: BaseException) -> DomainError | None:
    """Turn a known infrastructure exception into a domain error; None when it is a bug."""
    if isinstance(exc, DomainError):
        return exc
    library = _library_error(exc)
    if library is not None:
        return library
    if isinstance(exc, grpc.aio.AioRpcError):
        return PeerError(exc)
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return Unavailable("Redis is unreachable", reason="REDIS_UNAVAILABLE")
    if isinstance(exc, redis.exceptions.BusyLoadingError):
        return Unavailable("Redis is loading its data", reason="REDIS_UNAVAILABLE")
    dropped = isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    if dropped or isinstance(exc, _DATABASE_DOWN):
        return Unavailable("the database is unreachable", reason="DATABASE_UNAVAILABLE")
    return None


# What SQLAlchemy and the drivers raise when the database cannot be reached or used right now: refused
# or dropped connections, a database not accepting connections, a full pool, an unreadable SQLite file.
# (SQLAlchemy wraps the drivers' errors; the drivers' own classes cover what escapes unwrapped.)
_DATABASE_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
)


def _library_error(exc: BaseException) -> DomainError | None:
    """A library's own error that names its canonical code (workermon_queues.errors), as a domain error.

    Libraries stay free of gRPC: their errors carry `code` as a google.rpc.Code name, a `reason` and
    `metadata` (and `field` / `description` for a bad value), and are mapped here, in one place.
    """
    code_name = getattr(exc, "code", None)
    reason = getattr(exc, "reason", None)
    if not isinstance(code_name, str) or not isinstance(reason, str):
        return None
    code = grpc.StatusCode.__members__.get(code_name)
    if code is None or code not in _CODE_NUMBERS:
        return None
    field = getattr(exc, "field", None)
    if code is grpc.StatusCode.INVALID_ARGUMENT and isinstance(field, str):
        return InvalidArgument(field, str(getattr(exc, "description", exc)), reason=reason)
    err = DomainError(
        str(getattr(exc, "message", exc)), reason=reason, metadata=getattr(exc, "metadata", None)
    )
    err.code = code
    return err


DOMAIN_SUFFIX = "workermon"
GATEWAY_DOMAIN = f"gateway.{DOMAIN_SUFFIX}"
"""The ErrorInfo domain of errors the HTTP gateway raises itself (login, routing, its own limits)."""


def error_domain(method: str) -> str:
    """The ErrorInfo domain of an RPC's errors: its service's area, `monitor.workermon` for
    `/workermon.monitor.v1.MonitorService/ListJobs`, so a client sees which service refused even when
    one process hosts several."""
    package = method.lstrip("/").split("/", 1)[0].split(".")
    if len(package) >= 3 and package[0] == DOMAIN_SUFFIX:
        return f"{package[1]}.{DOMAIN_SUFFIX}"
    return DOMAIN_SUFFIX


def to_status(err: DomainError, domain: str) -> grpc.Status:
    """Build the rich status (code, message, ErrorInfo and, for bad fields, BadRequest)."""
    details: list[any_pb2.Any] = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=domain, metadata=err.metadata))
    details.append(info)
    if isinstance(err, InvalidArgument):
        bad = any_pb2.Any()
        bad.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.description)
                ]
            )
        )
        details.append(bad)
    proto = status_pb2.Status(code=_CODE_NUMBERS[err.code], message=err.message, details=details)
    return rpc_status.to_status(proto)


def error_info(exc: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """Read the ErrorInfo back from a failed call (for clients and tests)."""
    status = rpc_status.from_call(exc)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            found = error_details_pb2.ErrorInfo()
            detail.Unpack(found)
            return found
    return None


_CODE_NUMBERS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: code_pb2.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND: code_pb2.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: code_pb2.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION: code_pb2.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED: code_pb2.ABORTED,
    grpc.StatusCode.UNAUTHENTICATED: code_pb2.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: code_pb2.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE: code_pb2.UNAVAILABLE,
    grpc.StatusCode.INTERNAL: code_pb2.INTERNAL,
    grpc.StatusCode.RESOURCE_EXHAUSTED: code_pb2.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: code_pb2.DEADLINE_EXCEEDED,
}
