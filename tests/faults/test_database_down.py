"""The history database going away under a running suite: reads that need it answer UNAVAILABLE with
reason DATABASE_UNAVAILABLE (HTTP 503), what does not need it still answers, and all recover by themselves.

The database is a PostgreSQL database of its own that the test closes to new connections and whose
sessions it terminates, as a restarting or unreachable server would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from tests.support.bull import until
from tests.support.gateway import Gateway, start_gateway_suite, stop_gateway_suite
from workermon.collector.v1 import collector_service_pb2 as col_pb
from workermon.collector.v1 import collector_service_pb2_grpc as col_grpc
from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as pb_grpc
from workermon_core.client import open_channel
from workermon_core.errors import error_info


@dataclass
class Database:
    """A PostgreSQL database of the test's own, which it can close and open again."""

    admin: sa.Engine
    name: str
    url: str

    def _run(self, *statements: str) -> None:
        with self.admin.connect() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))

    def go_away(self) -> None:
        """Refuse new connections and end every open one."""
        self._run(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.name}' AND pid <> pg_backend_pid()",
        )

    def come_back(self) -> None:
        self._run(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def database(postgres_url: str | None) -> Iterator[Database]:
    if postgres_url is None:
        pytest.skip("PostgreSQL does not answer (CI_REQUIRE_POSTGRES=1 makes this an error)")
    name = "wm_down_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield Database(admin, name, url)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
async def gateway(tmp_path: Path, redis_url: str, database: Database) -> AsyncIterator[Gateway]:
    running = await start_gateway_suite(tmp_path, redis_url, database_url=database.url)
    try:
        yield running
    finally:
        await stop_gateway_suite(running)


def reason_of(exc: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> tuple[grpc.StatusCode, str]:
    info = error_info(exc.value)
    return exc.value.code(), info.reason if info is not None else ""


async def test_reads_of_history_answer_unavailable_while_the_database_is_gone(
    gateway: Gateway, database: Database
) -> None:
    channel = open_channel(gateway.suite.grpc_target, gateway.token("admin"))
    gateway.channels.append(channel)
    monitor, collector = pb_grpc.MonitorServiceStub(channel), col_grpc.CollectorServiceStub(channel)
    viewer = gateway.client("viewer")
    queue = gateway.queue("steady")
    await queue.add("j", {})
    collected = await collector.CollectNow(col_pb.CollectNowRequest(queues=["steady"]))
    assert [s.queue for s in collected.snapshots] == ["steady"]
    assert (await monitor.GetQueueTrend(pb.GetQueueTrendRequest(queue="steady", hours=1))).points

    database.go_away()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await collector.QuerySnapshots(col_pb.QuerySnapshotsRequest(queue="steady"))
        assert reason_of(exc) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await collector.SummarizeQueues(col_pb.SummarizeQueuesRequest())
        assert reason_of(exc) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")
        # MonitorService passes the collector's reason on, not a bare "peer unavailable".
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await monitor.GetQueueTrend(pb.GetQueueTrendRequest(queue="steady", hours=1))
        assert reason_of(exc) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_UNAVAILABLE")

        trend = await viewer.get("/api/v1/queues/steady/trend", params={"hours": 1})
        assert trend.status_code == 503, trend.text
        error = trend.json()["error"]
        assert error["status"] == "UNAVAILABLE"
        assert [d["reason"] for d in error["details"] if d["@type"].endswith("ErrorInfo")] == [
            "DATABASE_UNAVAILABLE"
        ]
        # The board needs no history to answer: live counts, the history part left out.
        await gateway.suite.built["monitor"].parts.board.refresh()
        overview = await monitor.GetOverview(pb.GetOverviewRequest())
        assert overview.counts.waiting == 1 and not overview.HasField("metrics_minute_time")
        listed = await viewer.get("/api/v1/queues")
        assert listed.status_code == 200 and [q["name"] for q in listed.json()["queues"]] == ["steady"]
        assert (await viewer.get("/api/v1/overview")).status_code == 200
    finally:
        database.come_back()

    async def recovered() -> bool:
        try:
            await monitor.GetQueueTrend(pb.GetQueueTrendRequest(queue="steady", hours=1))
        except grpc.aio.AioRpcError:
            return False
        return True

    await until(recovered, what="history readable again")
    assert (await viewer.get("/api/v1/queues/steady/trend", params={"hours": 1})).status_code == 200
