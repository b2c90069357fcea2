"""The audit log store on SQLite and PostgreSQL: append, filtered keyset pages, pruning, an unreachable
database, and the monitor's migrations next to the collector's in one database.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.fakes import DateClock
from tests.support.schema import schema_drift, table_names
from workermon_collector.migrate import MIGRATIONS as COLLECTOR_MIGRATIONS
from workermon_core.db import create_engine
from workermon_core.errors import Unavailable
from workermon_monitor.audit.models import AuditBase
from workermon_monitor.audit.store import (
    DEFAULT_RETENTION,
    AuditAction,
    AuditEntry,
    AuditEntryRow,
    AuditFilter,
    AuditOutcome,
    AuditStore,
    Cursor,
)
from workermon_monitor.migrate import MIGRATIONS

from .conftest import NOW

MONITOR_TABLES = {"monitor_alembic_version", "monitor_audit_log"}
COLLECTOR_TABLES = {"collector_alembic_version", "collector_queue_snapshots", "collector_hourly_rollups"}


def entry(
    time: datetime = NOW,
    *,
    actor: str = "alice",
    role: str = "operator",
    action: str = AuditAction.QUEUE_PAUSE,
    entity_type: str = "queue",
    entity_id: str = "emails",
    queue: str | None = "emails",
    outcome: str = AuditOutcome.SUCCEEDED,
    parameters: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    request_id: str = "req-1",
) -> AuditEntry:
    """An AuditEntry with plausible defaults."""
    return AuditEntry(
        time=time,
        actor=actor,
        role=role,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        queue=queue,
        outcome=outcome,
        parameters=json.dumps(parameters or {}),
        result=json.dumps(result or {}),
        request_id=request_id,
    )


async def list_all(store: AuditStore, page_size: int = 1000, **filters: Any) -> list[AuditEntryRow]:
    """Every matching row, following the cursors to the end."""
    rows: list[AuditEntryRow] = []
    after: Cursor | None = None
    while True:
        page, after = await store.list(page_size=page_size, after=after, **filters)
        rows.extend(page)
        if after is None:
            return rows


# --- Append and read back -------------------------------------------------------------------------


async def test_append_returns_ids_and_rows_read_back_whole(audit_store: AuditStore) -> None:
    # Given in another zone: stored and returned as the same instant in UTC.
    eastern = timezone(timedelta(hours=-5))
    first = entry(
        NOW.astimezone(eastern),
        action=AuditAction.JOB_RETRY,
        entity_type="job",
        entity_id="emails/42",
        parameters={"reason": "flaky SMTP", "ü": 1},
        result={"moved": 1},
        request_id="req-a",
    )
    second = entry(NOW, queue=None, entity_type="worker", entity_id="w-1", action=AuditAction.WORKER_STOP)
    first_id = await audit_store.append(first)
    second_id = await audit_store.append(second)
    assert second_id > first_id > 0

    got = await audit_store.get(first_id)
    assert got is not None
    assert got.id == first_id
    assert got.time == NOW
    assert got.time.tzinfo == UTC
    assert (got.actor, got.role, got.action, got.entity_type, got.entity_id, got.queue) == (
        "alice",
        "operator",
        "JOB_RETRY",
        "job",
        "emails/42",
        "emails",
    )
    assert json.loads(got.parameters) == {"reason": "flaky SMTP", "ü": 1}
    assert json.loads(got.result) == {"moved": 1}
    assert (got.outcome, got.request_id) == ("SUCCEEDED", "req-a")
    assert await audit_store.get(second_id + 1000) is None

    rows, after = await audit_store.list(page_size=10)
    assert after is None
    # Same time: the later append (higher id) first.
    assert [r.id for r in rows] == [second_id, first_id]
    assert rows[0].queue is None
    assert isinstance(rows[1], AuditEntry)


async def test_append_refuses_what_could_not_be_found_again(audit_store: AuditStore) -> None:
    with pytest.raises(ValueError, match="naive"):
        await audit_store.append(entry(datetime(2031, 3, 4, 10, 30)))
    with pytest.raises(ValueError, match="action"):
        await audit_store.append(entry(action="QUEUE_EXPLODE"))
    with pytest.raises(ValueError, match="parameters"):
        await audit_store.append(AuditEntry(**{**_fields(entry()), "parameters": "{not json"}))
    assert (await audit_store.list(page_size=10))[0] == []


async def test_an_idempotency_key_is_written_once_however_often_or_concurrently_appended(
    audit_store: AuditStore,
) -> None:
    keyed = AuditEntry(**{**_fields(entry()), "idempotency_key": "9d7c2a5e-0f1b-4b8e-a0c1-77e3f2d45b10"})
    ids = await asyncio.gather(*(audit_store.append(keyed) for _ in range(5)))
    assert len(set(ids)) == 1
    assert await audit_store.append(keyed) == ids[0]
    other = await audit_store.append(AuditEntry(**{**_fields(keyed), "idempotency_key": "another"}))
    unkeyed = [await audit_store.append(entry()) for _ in range(2)]
    rows = await list_all(audit_store)
    assert sorted(r.id for r in rows) == sorted([ids[0], other, *unkeyed])
    written = await audit_store.get(ids[0])
    assert written is not None and written.idempotency_key == keyed.idempotency_key


def _fields(value: AuditEntry) -> dict[str, Any]:
    return {name: getattr(value, name) for name in AuditEntry.__dataclass_fields__}


async def test_the_only_change_is_completing_a_pending_entry_once(audit_store: AuditStore) -> None:
    public = {name for name in dir(AuditStore) if not name.startswith("_")}
    assert public == {
        "append",
        "complete",
        "engine",
        "get",
        "list",
        "list_query",
        "prune",
        "prune_expired",
        "retention",
    }
    pending = await audit_store.append(entry(outcome="PENDING"))
    finished = await audit_store.append(entry(outcome="SUCCEEDED"))
    assert await audit_store.complete(pending, "SUCCEEDED", '{"changed": true}')
    assert not await audit_store.complete(pending, "FAILED", '{"error": "again"}')
    assert not await audit_store.complete(finished, "FAILED", "{}")
    with pytest.raises(ValueError, match="final outcome"):
        await audit_store.complete(finished, "PENDING", "{}")
    row = await audit_store.get(pending)
    assert row is not None and row.outcome == "SUCCEEDED" and row.result == '{"changed": true}'
    untouched = await audit_store.get(finished)
    assert untouched is not None and untouched.outcome == "SUCCEEDED" and untouched.result == "{}"


# --- Filters --------------------------------------------------------------------------------------


@pytest.fixture
async def varied(audit_store: AuditStore) -> dict[str, int]:
    """Six entries differing in each filtered field, one minute apart (a first, f last)."""
    specs = {
        "a": entry(actor="alice", action=AuditAction.QUEUE_PAUSE, entity_id="emails", queue="emails"),
        "b": entry(actor="bob", action=AuditAction.QUEUE_PAUSE, entity_id="reports", queue="reports"),
        "c": entry(
            actor="alice",
            action=AuditAction.JOB_RETRY,
            entity_type="job",
            entity_id="emails/7",
            queue="emails",
            outcome=AuditOutcome.FAILED,
        ),
        "d": entry(
            actor="bob",
            role="viewer",
            action=AuditAction.JOB_RETRY,
            entity_type="job",
            entity_id="emails/7",
            queue="emails",
            outcome=AuditOutcome.DENIED,
        ),
        "e": entry(
            actor="system",
            role="system",
            action=AuditAction.WORKER_OFFLINE,
            entity_type="worker",
            entity_id="w-1",
            queue=None,
        ),
        "f": entry(
            actor="carol",
            role="admin",
            action=AuditAction.INCIDENT_RESOLVE,
            entity_type="incident",
            entity_id="inc-9",
            queue=None,
            outcome=AuditOutcome.REFUSED,
        ),
    }
    ids = {}
    for minute, (name, value) in enumerate(specs.items()):
        moved = AuditEntry(**{**_fields(value), "time": NOW + timedelta(minutes=minute)})
        ids[name] = await audit_store.append(moved)
    return ids


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, "fedcba"),
        ({"actor": "alice"}, "ca"),
        ({"actor": "nobody"}, ""),
        ({"action": AuditAction.JOB_RETRY}, "dc"),
        ({"action": "QUEUE_PAUSE"}, "ba"),
        ({"entity_type": "job"}, "dc"),
        ({"entity_type": "job", "entity_id": "emails/7"}, "dc"),
        ({"entity_id": "w-1"}, "e"),
        ({"queue": "emails"}, "dca"),
        ({"outcome": AuditOutcome.SUCCEEDED}, "eba"),
        ({"outcome": "DENIED"}, "d"),
        ({"actor": "alice", "action": AuditAction.JOB_RETRY}, "c"),
        ({"actor": "bob", "queue": "emails", "outcome": "DENIED"}, "d"),
        ({"queue": "emails", "action": "QUEUE_PAUSE", "entity_type": "queue"}, "a"),
        ({"actor": "alice", "outcome": "DENIED"}, ""),
    ],
)
async def test_filters_and_their_combinations(
    audit_store: AuditStore, varied: dict[str, int], filters: dict[str, Any], expected: str
) -> None:
    rows = await list_all(audit_store, **filters)
    assert [r.id for r in rows] == [varied[name] for name in expected]


async def test_time_range_is_start_inclusive_end_exclusive(
    audit_store: AuditStore, varied: dict[str, int]
) -> None:
    # a..f at NOW+0..5 minutes.
    start, end = NOW + timedelta(minutes=1), NOW + timedelta(minutes=4)
    rows = await list_all(audit_store, start=start, end=end)
    assert [r.id for r in rows] == [varied["d"], varied["c"], varied["b"]]
    rows = await list_all(audit_store, start=start, end=end, actor="bob")
    assert [r.id for r in rows] == [varied["d"], varied["b"]]
    assert [r.id for r in await list_all(audit_store, start=NOW + timedelta(minutes=5))] == [varied["f"]]
    assert [r.id for r in await list_all(audit_store, end=NOW + timedelta(minutes=1))] == [varied["a"]]
    # Bounds in another zone mean the same instants.
    eastern = timezone(timedelta(hours=-5))
    rows = await list_all(audit_store, start=start.astimezone(eastern), end=end.astimezone(eastern))
    assert [r.id for r in rows] == [varied["d"], varied["c"], varied["b"]]
    with pytest.raises(ValueError, match="naive"):
        await audit_store.list(page_size=10, start=datetime(2031, 1, 1))


# --- Pages ----------------------------------------------------------------------------------------


async def test_250_rows_in_pages_of_100_while_rows_are_appended(audit_store: AuditStore) -> None:
    # Runs of 7 rows share one time, so cursors land inside runs of equal times.
    originals = []
    for i in range(250):
        moment = NOW + timedelta(seconds=i // 7)
        originals.append(await audit_store.append(entry(moment, actor=f"user-{i % 3}")))
    expected = sorted(originals, reverse=True)  # ids grow with time here, so newest first is id order

    seen: list[int] = []
    sizes = []
    after: Cursor | None = None
    while True:
        page, after = await audit_store.list(page_size=100, after=after)
        sizes.append(len(page))
        seen.extend(r.id for r in page)
        if after is None:
            break
        cursor_time = after[0]
        # Between pages: a newer row, and one at exactly the cursor's time (a higher id, so it sorts
        # before the cursor): neither belongs to the rest of this listing, and neither disturbs it.
        await audit_store.append(entry(NOW + timedelta(hours=1), actor="late"))
        await audit_store.append(entry(cursor_time, actor="late"))

    assert sizes == [100, 100, 50]
    assert seen == expected
    assert len(set(seen)) == 250


async def test_pages_of_a_filtered_listing(audit_store: AuditStore) -> None:
    for i in range(30):
        await audit_store.append(entry(NOW, actor="alice" if i % 2 else "bob", request_id=str(i)))
    pages = []
    after: Cursor | None = None
    while True:
        page, after = await audit_store.list(actor="alice", page_size=4, after=after)
        pages.append(page)
        if after is None:
            break
    assert [len(p) for p in pages] == [4, 4, 4, 3]
    ids = [r.id for p in pages for r in p]
    assert ids == sorted(ids, reverse=True)
    assert {r.request_id for p in pages for r in p} == {str(i) for i in range(1, 30, 2)}


async def test_an_exactly_full_last_page_has_no_cursor(audit_store: AuditStore) -> None:
    for i in range(4):
        await audit_store.append(entry(NOW + timedelta(seconds=i)))
    page, after = await audit_store.list(page_size=2)
    assert len(page) == 2
    assert after == (page[-1].time, page[-1].id)
    page, after = await audit_store.list(page_size=2, after=after)
    assert (len(page), after) == (2, None)
    with pytest.raises(ValueError, match="page_size"):
        await audit_store.list(page_size=0)


async def _plan(engine: AsyncEngine, store: AuditStore, filters: AuditFilter, after: Cursor | None) -> str:
    stmt = store.list_query(filters, page_size=100, after=after)
    async with engine.connect() as conn:
        compiled = stmt.compile(dialect=conn.dialect)
        params = compiled.construct_params()
        if conn.dialect.name == "sqlite":
            # The plan does not depend on the values; the driver only needs as many as there are marks.
            positional = tuple(
                str(params[name]) if isinstance(params[name], datetime) else params[name]
                for name in compiled.positiontup or ()
            )
            result = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", positional)
            return "\n".join(str(row[-1]) for row in result)
        # A test table is tiny; make the planner show what it does on a large one.
        await conn.exec_driver_sql("SET enable_seqscan = off")
        await conn.exec_driver_sql("SET enable_bitmapscan = off")
        result = await conn.exec_driver_sql(f"EXPLAIN {compiled}", params)
        return "\n".join(str(row[0]) for row in result)


@pytest.mark.parametrize(
    "filters",
    [
        AuditFilter(),
        AuditFilter(actor="alice"),
        AuditFilter(action="JOB_RETRY"),
        AuditFilter(entity_type="job", entity_id="emails/7"),
        AuditFilter(queue="emails"),
        AuditFilter(start=NOW - timedelta(days=1), end=NOW),
        AuditFilter(actor="alice", start=NOW - timedelta(days=1)),
    ],
)
@pytest.mark.parametrize("paged", [False, True])
async def test_listing_reads_an_index_in_order(
    audit_store: AuditStore, monitor_engine: AsyncEngine, filters: AuditFilter, paged: bool
) -> None:
    for i in range(20):
        await audit_store.append(entry(NOW - timedelta(minutes=i), actor=f"user-{i}"))
    plan = await _plan(monitor_engine, audit_store, filters, (NOW, 10) if paged else None)
    assert "OFFSET" not in str(audit_store.list_query(filters, page_size=100, after=None))
    if monitor_engine.dialect.name == "sqlite":
        assert "INDEX ix_monitor_audit_log_" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert "Index Scan" in plan or "Index Only Scan" in plan, plan
        assert "Sort" not in plan, plan


# --- Retention ------------------------------------------------------------------------------------


async def test_prune_deletes_older_rows_in_batches(audit_store: AuditStore) -> None:
    ids_by_day: dict[int, list[int]] = {}
    for day in range(10):
        for n in range(5):
            moment = NOW - timedelta(days=day, minutes=n)
            ids_by_day.setdefault(day, []).append(await audit_store.append(entry(moment)))
    # Older than 4 days: days 5..9, plus day 4's rows from before NOW's minute (n >= 1).
    cutoff = NOW - timedelta(days=4)
    assert await audit_store.prune(cutoff, batch=7) == 5 * 5 + 4
    left = {r.id for r in await list_all(audit_store)}
    assert left == {i for day in range(4) for i in ids_by_day[day]} | {ids_by_day[4][0]}
    assert await audit_store.prune(cutoff, batch=7) == 0
    # A batch size dividing the count exactly ends too.
    assert await audit_store.prune(NOW - timedelta(days=2), batch=5) == 10
    with pytest.raises(ValueError, match="batch"):
        await audit_store.prune(NOW, batch=0)


async def test_prune_expired_keeps_the_retention(audit_store: AuditStore, set_clock: DateClock) -> None:
    assert audit_store.retention == DEFAULT_RETENTION == timedelta(days=90)
    kept = await audit_store.append(entry(NOW - timedelta(days=89)))
    await audit_store.append(entry(NOW - timedelta(days=91)))
    await audit_store.append(entry(NOW - timedelta(days=400)))
    assert await audit_store.prune_expired() == 2
    assert [r.id for r in await list_all(audit_store)] == [kept]
    set_clock.now = NOW + timedelta(days=2)
    assert await audit_store.prune_expired() == 1
    assert await list_all(audit_store) == []


async def test_custom_retention(monitor_engine: AsyncEngine, set_clock: DateClock) -> None:
    store = AuditStore(monitor_engine, retention=timedelta(days=7), clock=set_clock)
    await store.append(entry(NOW - timedelta(days=8)))
    kept = await store.append(entry(NOW - timedelta(days=6)))
    assert await store.prune_expired() == 1
    assert [r.id for r in await list_all(store)] == [kept]


# --- An unreachable database ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
async def test_unreachable_database_is_unavailable(backend: str, tmp_path: Path) -> None:
    if backend == "postgresql":
        url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test"
    else:
        # A directory where the database file should be: SQLite cannot open it.
        (tmp_path / "db").mkdir()
        url = f"sqlite+aiosqlite:///{tmp_path / 'db'}"
    engine = create_engine(url)
    store = AuditStore(engine)
    try:
        with pytest.raises(Unavailable) as raised:
            await store.append(entry())
        assert raised.value.reason == "DATABASE_UNAVAILABLE"
        with pytest.raises(Unavailable):
            await store.list(page_size=10)
        with pytest.raises(Unavailable):
            await store.get(1)
        with pytest.raises(Unavailable):
            await store.prune(NOW)
    finally:
        await engine.dispose()


async def test_a_restarted_connection_is_not_an_outage(
    audit_store: AuditStore, monitor_engine: AsyncEngine, monitor_url: str
) -> None:
    await audit_store.append(entry())
    if monitor_engine.dialect.name == "postgresql":
        # The pooled connection killed, as a database restart would; the pre-ping replaces it.
        async with monitor_engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        admin = create_engine(monitor_url)
        try:
            async with admin.begin() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.dispose()
    else:
        await monitor_engine.dispose()
    assert await audit_store.append(entry()) > 0
    assert len(await list_all(audit_store)) == 2


# --- Migrations -----------------------------------------------------------------------------------


async def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert await MIGRATIONS.current_revision(database_url) is None
    await MIGRATIONS.upgrade(database_url)
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision() == "0002"
    assert await table_names(database_url) == MONITOR_TABLES
    await MIGRATIONS.upgrade(database_url)  # at head already: nothing to do
    await MIGRATIONS.downgrade(database_url, "base")
    assert await MIGRATIONS.current_revision(database_url) is None
    assert await table_names(database_url) == {"monitor_alembic_version"}
    await MIGRATIONS.upgrade(database_url)
    assert await table_names(database_url) == MONITOR_TABLES


async def test_models_match_the_migrations(monitor_url: str) -> None:
    assert await schema_drift(monitor_url, AuditBase.metadata, MIGRATIONS.version_table) == []


async def test_monitor_and_collector_share_one_database(database_url: str) -> None:
    await asyncio.gather(MIGRATIONS.upgrade(database_url), COLLECTOR_MIGRATIONS.upgrade(database_url))
    assert await table_names(database_url) == MONITOR_TABLES | COLLECTOR_TABLES
    assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
    assert await COLLECTOR_MIGRATIONS.current_revision(database_url) == COLLECTOR_MIGRATIONS.head_revision()

    engine = create_engine(database_url)
    try:
        audit_id = await AuditStore(engine).append(entry())

        await MIGRATIONS.downgrade(database_url, "base")
        assert await table_names(database_url) == {"monitor_alembic_version"} | COLLECTOR_TABLES
        assert await MIGRATIONS.current_revision(database_url) is None
        assert (
            await COLLECTOR_MIGRATIONS.current_revision(database_url) == COLLECTOR_MIGRATIONS.head_revision()
        )

        await MIGRATIONS.upgrade(database_url)
        await COLLECTOR_MIGRATIONS.downgrade(database_url, "base")
        assert await table_names(database_url) == MONITOR_TABLES | {"collector_alembic_version"}
        assert await COLLECTOR_MIGRATIONS.current_revision(database_url) is None
        assert await MIGRATIONS.current_revision(database_url) == MIGRATIONS.head_revision()
        store = AuditStore(engine)
        assert await store.get(audit_id) is None  # the monitor's downgrade dropped it, as it should
        kept = await store.append(entry())
        await COLLECTOR_MIGRATIONS.upgrade(database_url)
        assert await store.get(kept) is not None
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_from_several_tasks(database_url: str) -> None:
    await asyncio.gather(
        *(MIGRATIONS.upgrade(database_url) for _ in range(4)),
        *(COLLECTOR_MIGRATIONS.upgrade(database_url) for _ in range(2)),
    )
    assert await MIGRATIONS.current_revision(database_url) == "0002"
    assert await COLLECTOR_MIGRATIONS.current_revision(database_url) == COLLECTOR_MIGRATIONS.head_revision()
    assert await table_names(database_url) == MONITOR_TABLES | COLLECTOR_TABLES


_UPGRADE_SCRIPT = """
import asyncio, sys, time
from workermon_monitor.migrate import MIGRATIONS

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
asyncio.run(MIGRATIONS.upgrade(sys.argv[1]))
"""


async def test_concurrent_upgrades_from_several_processes(database_url: str) -> None:
    """Three processes (as three monitor replicas starting together) upgrade one database at once."""
    # The database exists before they start (WAL switched on), as it does for replicas of a service.
    engine = create_engine(database_url)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    await engine.dispose()

    start_at = str(time.time() + 1.5)
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _UPGRADE_SCRIPT,
            database_url,
            start_at,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    assert await MIGRATIONS.current_revision(database_url) == "0002"
    assert await table_names(database_url) == MONITOR_TABLES
