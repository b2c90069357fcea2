"""Audit entries for attempts refused before a service runs them: no token, a bad one, a role too low.

An audited action (an RPC with the `audit_action` option) records its own refusals when the servicer
runs (MonitorService's role and input checks). An attempt the interceptor turns away never reaches the
servicer, so the interceptor hands it here, and it is written to MonitorService's audit log over gRPC,
whichever service refused it. Entries are bounded (a few short parameters), and token-less callers
share a small rate so nobody can fill the log by hammering a port: past the rate, attempts are counted
and the count goes into the next entry written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from google.protobuf import descriptor_pool, struct_pb2
from google.protobuf.message import Message

from workermon.common.v1 import access_pb2
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb

from . import context, validation
from .audit_client import append_audit_log
from .errors import DomainError, InvalidArgument

if TYPE_CHECKING:
    from workermon.monitor.v1.monitor_service_pb2_grpc import MonitorServiceStub

    from .auth import Principal
    from .peer import Peer

log = structlog.get_logger("workermon.audit.refusals")

ANONYMOUS = "anonymous"
MAX_PARAMETERS = 8
MAX_VALUE_CHARS = 200
# Which request field names the thing acted on, in order of preference.
_ENTITY_FIELDS = (
    ("worker_id", "worker"),
    ("incident_id", "incident"),
    ("silence_id", "silence"),
    ("window_id", "maint_window"),
    ("channel", "notify_channel"),
    ("job_id", "job"),
    ("queue", "queue"),
)


def method_audit_actions(service_names: list[str]) -> dict[str, mon_pb.AuditAction.ValueType]:
    """Map '/pkg.Service/Method' to the AuditAction its `audit_action` option names.

    Raises ValueError at start when an option names no AuditAction, so a typo cannot silently lose
    entries.
    """
    pool = descriptor_pool.Default()
    actions: dict[str, mon_pb.AuditAction.ValueType] = {}
    for name in service_names:
        for method in pool.FindServiceByName(name).methods:
            named = method.GetOptions().Extensions[access_pb2.audit_action]
            if not named:
                continue
            try:
                actions[f"/{name}/{method.name}"] = mon_pb.AuditAction.Value("AUDIT_ACTION_" + named)
            except ValueError:
                raise ValueError(f"{name}.{method.name}: audit_action {named!r} is no AuditAction") from None
    return actions


def _bounded(value: object) -> str:
    text = str(value).replace("\x00", "\ufffd")
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _scalar_fields(request: Message | None) -> dict[str, object]:
    """The request's set scalar fields (strings, numbers, enums by name), the first MAX_PARAMETERS."""
    if request is None:
        return {}
    found: dict[str, object] = {}
    for field, value in request.ListFields():
        if field.message_type is not None or (isinstance(value, Sequence) and not isinstance(value, str)):
            continue
        if field.enum_type is not None:
            known = field.enum_type.values_by_number.get(value)
            found[field.name] = known.name if known is not None else str(value)
        else:
            found[field.name] = value
        if len(found) == MAX_PARAMETERS:
            break
    return found


def _entity(method: str, fields: dict[str, object]) -> tuple[str, str, str]:
    """(entity type, entity id, queue) of the request, as the audit log names them."""
    queue = str(fields.get("queue", ""))
    try:
        validation.optional_queue_name(queue, "queue")
    except InvalidArgument:
        queue = ""  # a name no queue can have: kept among the parameters, not as the entry's queue
    for name, kind in _ENTITY_FIELDS:
        if fields.get(name):
            entity = _bounded(fields[name])
            if kind == "job" and queue:
                entity = f"{queue}/{entity}"
            return kind, entity, queue
    return "rpc", method.rsplit("/", 1)[-1], queue


class Writer(Protocol):
    """Something that appends an AuditLog entry (MonitorService.CreateAuditLog)."""

    async def __call__(self, entry: mon_pb.AuditLog) -> None: ...


class RefusalAudit:
    """Writes refused attempts at audited RPCs to the audit log (see the module docstring)."""

    def __init__(
        self,
        write: Writer,
        actions: dict[str, mon_pb.AuditAction.ValueType],
        *,
        anonymous_per_second: float = 5.0,
        burst: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._actions = actions
        self._rate = anonymous_per_second
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self._suppressed = 0

    def audited(self, method: str) -> bool:
        """Whether refusals of `method` are recorded."""
        return method in self._actions

    def _admit_anonymous(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def entry(
        self, method: str, principal: Principal | None, err: DomainError, request: Message | None
    ) -> mon_pb.AuditLog:
        """The DENIED entry for one refused attempt."""
        fields = _scalar_fields(request)
        kind, entity, queue = _entity(method, fields)
        entry = mon_pb.AuditLog(
            actor=principal.subject if principal else ANONYMOUS,
            role=principal.role if principal else "none",
            action=self._actions[method],
            entity_type=kind,
            entity_id=entity,
            queue=queue,
            outcome=mon_pb.AUDIT_OUTCOME_DENIED,
            request_id=context.request_id.get() or "",
        )
        entry.parameters.update({name: _bounded(value) for name, value in fields.items()})
        result = struct_pb2.Struct()
        details: dict[str, Any] = {"error": _bounded(err.message), "reason": err.reason, "rpc": method}
        if self._suppressed:
            details["unrecorded_anonymous_refusals_before"] = self._suppressed
        result.update(details)
        entry.result.CopyFrom(result)
        return entry

    async def record(
        self, method: str, principal: Principal | None, err: DomainError, request: Message | None
    ) -> None:
        """Write the entry; never raises (the caller is refused whatever happens to the entry)."""
        if principal is None and not self._admit_anonymous():
            self._suppressed += 1
            return
        entry = self.entry(method, principal, err, request)
        suppressed, self._suppressed = self._suppressed, 0
        try:
            await self._write(entry)
        except Exception as exc:
            self._suppressed += suppressed
            log.warning("refusal_not_audited", rpc=method, reason=err.reason, error=str(exc))


def monitor_writer(peer: Peer[MonitorServiceStub]) -> Writer:
    """A Writer that calls MonitorService.CreateAuditLog through `peer` (a token of this service)."""

    async def write(entry: mon_pb.AuditLog) -> None:
        await append_audit_log(peer.stub, entry)

    return write
