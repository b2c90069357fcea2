"""ErrorInfo domains (one per service), and infrastructure failures translated to canonical codes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from workermon_core.db import create_engine
from workermon_core.errors import error_domain, translate


def test_error_domain_names_the_service_of_the_method() -> None:
    assert error_domain("/workermon.monitor.v1.MonitorService/ListJobs") == "monitor.workermon"
    assert error_domain("/workermon.incidents.v1.IncidentService/ListIncidents") == "incidents.workermon"
    assert error_domain("/grpc.health.v1.Health/Check") == "workermon"


async def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    # A directory where the SQLite file should be: the driver cannot open it, as with a lost volume.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}")
    try:
        with pytest.raises(Exception) as raised:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
    err = translate(raised.value)
    assert err is not None and err.code == grpc.StatusCode.UNAVAILABLE
    assert (err.reason, err.message) == ("DATABASE_UNAVAILABLE", "the database is unreachable")
    assert translate(ValueError("a bug")) is None
