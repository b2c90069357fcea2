"""The queue library's own errors: plain exceptions with a canonical code name and a reason.

The library does not depend on gRPC; a server maps `code` (a google.rpc.Code name such as "NOT_FOUND")
to its status, and `reason` / `metadata` to google.rpc.ErrorInfo.
"""

from __future__ import annotations


class QueueError(Exception):
    """An expected failure of a queue read or action."""

    code = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.code
        self.metadata = dict(metadata or {})


class InvalidArgument(QueueError):
    """A request value is unusable; `field` names it."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}", reason=reason, metadata={"field": field})
        self.field = field
        self.description = message


class NotFound(QueueError):
    """The queue or job does not exist."""

    code = "NOT_FOUND"


class FailedPrecondition(QueueError):
    """The queue or job is not in a state that allows the action."""

    code = "FAILED_PRECONDITION"
