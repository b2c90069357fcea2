"""Revisions of the alerting configuration in the incident database, and keeping every replica on the
one in force (the highest revision).

Each revision is a whole document (alerting_config.py). A writer picks the next number itself (the
current one + 1), so two writers at once collide on the primary key and the second is told the
configuration changed; the initial import from the environment is revision 1 by the same rule, so two
replicas starting at once store it once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from workermon_core.errors import Aborted, InvalidArgument, NotFound

from . import audited
from .alerting_config import Compiled, Document, compile_document, keep_secrets, require_header_values
from .audited import AuditHook
from .models import alerting_config_revisions as table
from .store import IncidentStore

log = structlog.get_logger("workermon.incidents.alerting")

SYSTEM_AUTHOR = "system"
IMPORT_COMMENT = "imported from the environment"
CHANGED_REASON = "ALERTING_CONFIG_CHANGED"


@dataclass(frozen=True)
class Revision:
    """One stored revision (its document holds the secrets: never log or return it as it is)."""

    revision: int
    document: Document
    author: str
    comment: str
    create_time: datetime


def _revision(row: Any) -> Revision:
    m = row._mapping
    return Revision(m["revision"], json.loads(m["document"]), m["author"], m["comment"], m["create_time"])


async def latest_number(conn: AsyncConnection) -> int | None:
    """The revision in force, None before any was stored."""
    value = (await conn.execute(select(func.max(table.c.revision)))).scalar()
    return None if value is None else int(value)


async def load(conn: AsyncConnection, revision: int) -> Revision | None:
    """One revision, or None."""
    row = (await conn.execute(select(table).where(table.c.revision == revision))).first()
    return None if row is None else _revision(row)


async def insert_revision(conn: AsyncConnection, revision: Revision) -> bool:
    """Store a revision unless its number is taken; False when it was."""
    values = {
        "revision": revision.revision,
        "document": json.dumps(revision.document, sort_keys=True),
        "author": revision.author,
        "comment": revision.comment,
        "create_time": revision.create_time,
    }
    dialect = (
        postgresql if conn.dialect.name == "postgresql" else sqlite if conn.dialect.name == "sqlite" else None
    )
    if dialect is None:
        stmt: Any = insert(table).values(**values)
    else:
        stmt = dialect.insert(table).values(**values).on_conflict_do_nothing(index_elements=["revision"])
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def delete_revision(conn: AsyncConnection, revision: int) -> None:
    """Remove a revision whose audit entry could not be written."""
    await conn.execute(delete(table).where(table.c.revision == revision))


async def page(conn: AsyncConnection, before: int | None, limit: int) -> list[Revision]:
    """Revisions newest first, below `before`."""
    stmt = select(table)
    if before is not None:
        stmt = stmt.where(table.c.revision < before)
    rows = await conn.execute(stmt.order_by(table.c.revision.desc()).limit(limit))
    return [_revision(row) for row in rows]


Applier = Callable[[Compiled], None]
# The hook gets the revision in force before and the one stored.
Audit = AuditHook[tuple[Revision | None, Revision]]


class AlertingConfigs:
    """The revisions, and applying the one in force to this replica (`sync`, polled; and after `update`).

    `environment()` gives the document to import when the table is empty; `clock()` aware UTC datetimes.
    """

    def __init__(
        self,
        store: IncidentStore,
        environment: Callable[[], Document],
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.environment = environment
        self.clock = clock
        self.applied: int | None = None
        self._appliers: list[Applier] = []
        self._compared = False
        # A stored revision this process could not apply: said once, not at every poll.
        self._rejected: int | None = None

    def on_apply(self, applier: Applier) -> None:
        """Call `applier` with each revision that comes into force here."""
        self._appliers.append(applier)

    async def sync(self) -> int:
        """Import the environment when nothing is stored, then apply the revision in force if it is new."""
        async with self.store.engine.connect() as conn:
            number = await latest_number(conn)
        if number is None:
            number = await self.import_environment()
        if number not in (self.applied, self._rejected):
            async with self.store.engine.connect() as conn:
                current = await load(conn, number)
            if current is not None:
                self._apply(current)
        if not self._compared:
            self._compared = True
            await self._compare_environment(number)
        return number

    async def import_environment(self) -> int:
        """Store revision 1 from the environment (once, whatever the number of replicas); the current one."""
        document = self.environment()
        imported = Revision(1, document, SYSTEM_AUTHOR, IMPORT_COMMENT, self.clock())
        async with self.store.write() as conn:
            stored = await insert_revision(conn, imported)
            number = await latest_number(conn)
        if stored:
            log.info("alerting_config_imported", revision=1)
        return number or 1

    async def _compare_environment(self, number: int) -> None:
        current = await self.get(number)
        if current.document != self.environment():
            # Once per process: the environment only seeds an empty table.
            log.info("alerting_config_environment_ignored", revision=number)

    def _apply(self, revision: Revision) -> None:
        try:
            compiled = compile_document(revision.document)
        except InvalidArgument as exc:
            # A stored revision was valid when written; a later, stricter check must not stop alerting.
            log.error("alerting_config_not_applied", revision=revision.revision, field=exc.field)
            self._rejected = revision.revision
            return
        for applier in self._appliers:
            applier(compiled)
        self.applied = revision.revision
        log.info("alerting_config_applied", revision=revision.revision)

    async def current(self) -> Revision:
        """The revision in force (importing the environment when nothing is stored yet)."""
        async with self.store.engine.connect() as conn:
            number = await latest_number(conn)
        if number is None:
            number = await self.import_environment()
        return await self.get(number)

    async def get(self, revision: int) -> Revision:
        """One revision (0: the one in force); NOT_FOUND when there is none."""
        if revision < 0:
            raise InvalidArgument("revision", "must not be negative")
        if revision == 0:
            return await self.current()
        async with self.store.engine.connect() as conn:
            found = await load(conn, revision)
        if found is None:
            raise NotFound(
                f"alerting configuration revision {revision} does not exist",
                reason="ALERTING_CONFIG_REVISION_NOT_FOUND",
            )
        return found

    async def update(
        self,
        document: Document,
        *,
        expected_revision: int,
        author: str,
        comment: str,
        validate_only: bool = False,
        audit: Audit | None = None,
    ) -> Revision:
        """Store `document` as the next revision after `expected_revision` (ABORTED when that is not the
        current one) with its audit entry (removed again if the entry cannot be written; audited.py), then
        applied here at once."""
        if expected_revision < 0:
            raise InvalidArgument("expected_revision", "must not be negative")
        async with self.store.engine.connect() as conn:
            number = await latest_number(conn)
            before = await load(conn, number) if number is not None else None
        # A bad document is refused as such before a stale revision: the fix is the caller's either way.
        merged = keep_secrets(document, before.document if before else None)
        compiled = compile_document(merged)
        require_header_values(merged)
        if (number or 0) != expected_revision:
            raise _changed(number or 0)
        revision = Revision(expected_revision + 1, merged, author, comment, self.clock())
        if validate_only:
            return revision

        async def store_it(conn: AsyncConnection) -> tuple[Revision | None, Revision]:
            if not await insert_revision(conn, revision):
                raise _changed(await latest_number(conn) or 0)
            return before, revision

        async def undo(conn: AsyncConnection, change: tuple[Revision | None, Revision]) -> None:
            await delete_revision(conn, change[1].revision)

        await audited.change(self.store, store_it, audit, undo, revision.create_time)
        for applier in self._appliers:
            applier(compiled)
        self.applied = revision.revision
        log.info("alerting_config_applied", revision=revision.revision)
        return revision

    async def page(self, before: int | None, limit: int) -> list[Revision]:
        """Revisions newest first, below `before` (None: from the newest)."""
        async with self.store.engine.connect() as conn:
            return await page(conn, before, limit)


def _changed(current: int) -> Aborted:
    return Aborted(
        f"the alerting configuration changed: revision {current} is in force; read it, then change it again",
        reason=CHANGED_REASON,
        metadata={"current_revision": str(current)},
    )
