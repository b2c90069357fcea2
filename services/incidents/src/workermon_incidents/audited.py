"""Operators' changes and their audit entries, so that the audit log holds exactly the changes made.

A change and its entry (a serialized CreateAuditLogRequest) are committed in one transaction, the entry
in the outbox table; the entry is sent to MonitorService's audit log after the commit and then dropped.
If it cannot be sent, the change is undone (and the entry with it) and the caller is refused: no entry
describes a change that did not happen. If the process dies in between, the entry stays, and any
replica's `send_kept` writes it: no change goes without its entry. The entry carries a request id the
audit log writes once, so sending it twice (the sweep and a request that was only slow) adds nothing.

The entry is not sent inside the transaction: the audit log is another service's, and may even share
the database whose write lock the transaction holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from .store import IncidentStore

log = structlog.get_logger("workermon.incidents.audit")

T = TypeVar("T")

# How old an outbox entry must be before the sweep sends it: well past the audit call's timeout, so
# the sweep never races the request that kept it (which sends it, or undoes its change, at once).
OUTBOX_GRACE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class AuditHook(Generic[T]):
    """How a change is audited: `request(subject, at)` is its entry for what the change returned,
    built inside the change's transaction; `send` writes an entry to the audit log."""

    request: Callable[[T, datetime], bytes]
    send: Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Kept:
    """An entry in the outbox: its row, its request, and how to send it."""

    outbox_id: int
    request: bytes
    send: Callable[[bytes], Awaitable[None]]


async def keep(
    store: IncidentStore, conn: AsyncConnection, audit: AuditHook[T] | None, subject: T, at: datetime
) -> Kept | None:
    """Put the change's entry in the outbox, inside the change's transaction (None without a hook)."""
    if audit is None:
        return None
    request = audit.request(subject, at)
    return Kept(await store.add_audit(conn, request, at), request, audit.send)


async def send_or_undo(
    store: IncidentStore, kept: Kept | None, undo: Callable[[AsyncConnection], Awaitable[None]]
) -> None:
    """Send the kept entry, then drop it; if it cannot be sent, `undo` the change and drop the entry
    in one transaction, and re-raise. Nothing to do without an entry."""
    if kept is None:
        return
    try:
        await kept.send(kept.request)
    except BaseException:
        try:
            async with store.write() as conn:
                await undo(conn)
                await store.remove_audit(conn, kept.outbox_id)
        except Exception:
            # The change stays, and so does its entry: the outbox sweep writes it to the audit log.
            log.exception("audited_change_not_undone", outbox_id=kept.outbox_id)
        raise
    try:
        async with store.write() as conn:
            await store.remove_audit(conn, kept.outbox_id)
    except Exception as exc:
        # Harmless: the sweep sends it again and the audit log keeps one entry per request id.
        log.warning("audit_outbox_not_cleared", outbox_id=kept.outbox_id, error=repr(exc))


async def change(
    store: IncidentStore,
    make: Callable[[AsyncConnection], Awaitable[T]],
    audit: AuditHook[T] | None,
    undo: Callable[[AsyncConnection, T], Awaitable[None]],
    at: datetime,
) -> T:
    """Make a change with its entry kept, then send the entry (see `send_or_undo`); what `make` returned."""
    async with store.write() as conn:
        made = await make(conn)
        kept = await keep(store, conn, audit, made, at)

    async def undo_made(conn: AsyncConnection) -> None:
        await undo(conn, made)

    await send_or_undo(store, kept, undo_made)
    return made


async def send_kept(
    store: IncidentStore,
    send: Callable[[bytes], Awaitable[None]],
    now: datetime,
    grace: timedelta = OUTBOX_GRACE,
) -> int:
    """Send the outbox entries older than `grace` (their process died before sending them, or could
    not drop them), dropping each once the audit log has it; how many were sent. Raises what `send`
    raises (the audit log down): the rest wait for the next sweep."""
    sent = 0
    # Read in batches; each sent entry is dropped, so the next batch starts after it.
    while batch := await store.audits_before(now - grace):
        for outbox_id, request in batch:
            await send(request)
            async with store.write() as conn:
                await store.remove_audit(conn, outbox_id)
            sent += 1
    if sent:
        log.warning("kept_audits_sent", count=sent)
    return sent
