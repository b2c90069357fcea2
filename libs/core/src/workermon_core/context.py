"""Per-RPC context: the request id and the caller, visible to servicers and outgoing calls."""

from __future__ import annotations

import contextvars

from .auth import Principal

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)

REQUEST_ID_HEADER = "x-request-id"


def current_subject() -> str:
    """The caller's subject, or 'system' when no RPC is being served."""
    who = principal.get()
    return who.subject if who else "system"
