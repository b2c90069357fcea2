"""Running an action under the audit log: role, confirmation, the action, and the entry recording it.

Order matters and is the point of this module. A refused attempt (role, bad input, missing
confirmation) is recorded with its refusal before the error goes back. An allowed one is recorded as
PENDING *before* anything changes; if that write fails the action is not performed (UNAVAILABLE). Its
end (SUCCEEDED or FAILED, with what changed) then completes that same entry; if the database fails in
that instant, the entry stays PENDING, truthfully, and the completion is retried in the background.

What an entry keeps is bounded whoever asked, refused and denied attempts included (a viewer must not
be able to fill the log with megabyte "reasons"): every text is cut to MAX_AUDIT_VALUE_CHARS and at most
MAX_AUDIT_KEYS parameters are kept (workermon_core.validation), and `_truncated` names what was cut.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog

from workermon_core import context
from workermon_core.auth import role_allows, role_name
from workermon_core.errors import DomainError, PermissionDenied, Unavailable, translate
from workermon_core.validation import bounded_fields, bounded_text

from .models import AuditAction
from .store import AuditEntry, AuditStore

log = structlog.get_logger("workermon.monitor.audit")

T = TypeVar("T")
MAX_UNFINISHED = 10_000
MAX_SETTLING = 1_000

SUCCEEDED, FAILED, DENIED, REFUSED, PENDING = "SUCCEEDED", "FAILED", "DENIED", "REFUSED", "PENDING"


@dataclass(frozen=True)
class Target:
    """What an action is about: entity type and id, and its queue when there is one."""

    entity_type: str
    entity_id: str
    queue: str | None = None

    @classmethod
    def of_queue(cls, queue: str) -> Target:
        """A queue."""
        return cls("queue", queue, queue)

    @classmethod
    def of_job(cls, queue: str, job_id: str) -> Target:
        """A job of a queue."""
        return cls("job", f"{queue}/{job_id}", queue)

    @classmethod
    def of_scheduler(cls, queue: str, scheduler_id: str) -> Target:
        """A job scheduler of a queue."""
        return cls("job_scheduler", f"{queue}/{scheduler_id}", queue)

    @classmethod
    def of_worker(cls, worker_id: str) -> Target:
        """A worker."""
        return cls("worker", worker_id)


@dataclass
class Done(Generic[T]):
    """What an action returns: its value, what changed (for the entry), and its outcome.

    An action whose end is not known yet (a worker command not answered within the wait) returns
    outcome PENDING and a `settle` that waits for the end: the entry stays PENDING until then.
    """

    value: T
    result: dict[str, Any] = field(default_factory=dict)
    outcome: str = SUCCEEDED
    settle: Callable[[], Awaitable[tuple[str, dict[str, Any]]]] | None = None


def _json(value: dict[str, Any]) -> str:
    return json.dumps(bounded_fields(value), separators=(",", ":"), default=str, sort_keys=True)


class Auditor:
    """Runs actions under the audit log (see the module docstring)."""

    def __init__(self, store: AuditStore, roles: dict[str, int], clock: Callable[[], float]) -> None:
        self.store = store
        self.roles = roles
        self.clock = clock
        self._unfinished: deque[tuple[int, str, str]] = deque(maxlen=MAX_UNFINISHED)
        self._settling: set[asyncio.Task[None]] = set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    async def _append(
        self,
        action: AuditAction,
        target: Target,
        parameters: dict[str, Any],
        outcome: str,
        result: dict[str, Any],
    ) -> int:
        who = context.principal.get()
        return await self.record_for(
            actor=who.subject if who else "system",
            role=who.role if who else "system",
            action=action,
            target=target,
            parameters=parameters,
            outcome=outcome,
            result=result,
            request_id=context.request_id.get() or "",
        )

    async def record_for(
        self,
        *,
        actor: str,
        role: str,
        action: AuditAction,
        target: Target,
        parameters: dict[str, Any],
        outcome: str,
        result: dict[str, Any],
        request_id: str,
        at: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append a finished entry naming its actor explicitly (written on behalf of another service);
        `at` is when it happened, for an entry written after the fact (default: now). With an
        `idempotency_key` already written, the id of that entry is returned and nothing is added."""
        entry = AuditEntry(
            time=at or self._now(),
            actor=bounded_text(actor or "system"),
            # Columns of 16 characters: cut hard (the services only write short role and type names).
            role=bounded_text(role or "system")[:16],
            action=str(action),
            entity_type=bounded_text(target.entity_type)[:16],
            entity_id=bounded_text(target.entity_id),
            queue=bounded_text(target.queue) if target.queue is not None else None,
            parameters=_json(parameters),
            outcome=outcome,
            result=_json(result),
            request_id=bounded_text(request_id, 128),
            idempotency_key=idempotency_key or None,
        )
        try:
            return await self.store.append(entry)
        except Exception as exc:
            # One reason for callers whatever broke (the database gone, or a bug): the action did not run.
            cause = exc.reason if isinstance(exc, Unavailable) else type(exc).__name__
            if not isinstance(exc, Unavailable):
                log.error("audit_write_failed", action=str(action), error=str(exc))
            raise Unavailable(
                f"the audit log cannot be written, so the action was not performed ({exc})",
                reason="AUDIT_UNAVAILABLE",
                metadata={"cause": cause},
            ) from exc

    async def record(
        self,
        action: AuditAction,
        target: Target,
        parameters: dict[str, Any],
        outcome: str,
        result: dict[str, Any],
    ) -> int:
        """Append a finished entry (an event, or an entry written for another service); its id."""
        return await self._append(action, target, parameters, outcome, result)

    async def run(
        self,
        method: str,
        action: AuditAction,
        target: Target,
        parameters: dict[str, Any],
        perform: Callable[[], Awaitable[Done[T]]],
        *,
        check: Callable[[], None] | None = None,
        required: int | None = None,
    ) -> tuple[T, int]:
        """Check role and input, record, perform, complete the record; the value and the entry id.

        `required` overrides the method's action role where the request decides it (removing jobs in
        bulk, exporting job data)."""
        who = context.principal.get()
        required = self.roles[method] if required is None else required
        if who is None or not role_allows(who.role, required):
            role = who.role if who else "none"
            needed = role_name(required)
            message = f"role {role!r} may not {method} (needs {needed})"
            audit_id = await self._append(action, target, parameters, DENIED, {"error": message})
            raise PermissionDenied(
                message,
                reason="ROLE_NOT_ALLOWED",
                metadata={"required_role": needed, "role": role, "audit_id": str(audit_id)},
            )
        if check is not None:
            try:
                check()
            except DomainError as refusal:
                audit_id = await self._append(action, target, parameters, REFUSED, {"error": refusal.message})
                refusal.metadata["audit_id"] = str(audit_id)
                raise
        audit_id = await self._append(action, target, parameters, PENDING, {})
        try:
            done = await perform()
        except BaseException as exc:
            err = translate(exc)
            message = err.message if err is not None else f"internal error: {type(exc).__name__}"
            if isinstance(exc, asyncio.CancelledError):
                message = "the request was cancelled while the action ran; its effect is unknown"
            await self._complete(audit_id, FAILED, {"error": message})
            raise
        if done.outcome == PENDING:
            if done.settle is not None:
                self._settle_later(audit_id, done.settle)
            return done.value, audit_id
        await self._complete(audit_id, done.outcome, done.result)
        return done.value, audit_id

    def _settle_later(
        self, audit_id: int, settle: Callable[[], Awaitable[tuple[str, dict[str, Any]]]]
    ) -> None:
        """Complete a PENDING entry once `settle` knows the end; bounded, so a flood cannot pile up
        tasks (past the bound the entry stays PENDING, which is still true)."""
        if len(self._settling) >= MAX_SETTLING:
            log.warning("audit_settle_skipped", audit_id=audit_id, settling=len(self._settling))
            return

        async def run() -> None:
            try:
                outcome, result = await settle()
            except Exception as exc:
                log.warning("audit_settle_failed", audit_id=audit_id, error=str(exc))
                return
            if outcome != PENDING:
                await self._complete(audit_id, outcome, result)

        task = asyncio.create_task(run())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def close(self) -> None:
        """Stop waiting for unsettled entries (they stay PENDING)."""
        for task in list(self._settling):
            task.cancel()
        await asyncio.gather(*self._settling, return_exceptions=True)

    async def finish(self, audit_id: int, outcome: str, result: dict[str, Any]) -> None:
        """Complete an entry left PENDING by an action that ends after its answer (a streamed export)."""
        await self._complete(audit_id, outcome, result)

    async def _complete(self, audit_id: int, outcome: str, result: dict[str, Any]) -> None:
        text = _json(result)
        try:
            await self.store.complete(audit_id, outcome, text)
        except Exception as exc:
            # The action happened; the entry says PENDING until the database takes the completion.
            log.error("audit_complete_failed", audit_id=audit_id, error=str(exc))
            self._unfinished.append((audit_id, outcome, text))

    async def flush(self) -> int:
        """Write the completions the database refused earlier; how many were written."""
        written = 0
        while self._unfinished:
            audit_id, outcome, text = self._unfinished[0]
            await self.store.complete(audit_id, outcome, text)
            self._unfinished.popleft()
            written += 1
        return written

    @property
    def unfinished(self) -> int:
        """Completions waiting for the database."""
        return len(self._unfinished)
