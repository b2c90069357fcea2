"""The initContainer's script (deploy/k8s/base/wait_for_migrations.py) against an empty, a migrated, an
older and a newer schema on each backend: once as the pod runs it (its own process, which takes seconds
to import the suite), the other cases in this process."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import text
from sqlalchemy.pool import NullPool

from workermon_cli import registry
from workermon_cli.runtime import migrate
from workermon_core.db import create_engine
from workermon_core.settings import Settings

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "wait_for_migrations.py"
QUICK = ["--timeout", "0.3", "--interval", "0.1"]
ALL = [module.name for module in registry.with_migrations()]


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wait_for_migrations", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load_script()


async def _wait_here(url: str, names: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[bool, str]:
    """The script's wait loop in this process: (ready, what it printed)."""
    capsys.readouterr()
    ready = await script._wait(names, url, 0.3, 0.1)
    return ready, capsys.readouterr().out


async def _run(url: str, *args: str) -> tuple[int, str]:
    """The script in its own process, as the initContainer runs it: (exit code, output)."""
    env = {**os.environ, "DATABASE_URL": url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _set_revision(url: str, version_table: str, revision: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"UPDATE {version_table} SET version_num = :rev"), {"rev": revision})
    finally:
        await engine.dispose()


async def test_waits_for_an_empty_database_and_goes_once_migrated(database_url: str) -> None:
    code, output = await _run(database_url, *QUICK)
    assert code == 1
    for name in ALL:
        assert f"waiting for the migration of {name}: at no revision" in output
    assert "workermon-migrate" in output

    await migrate(Settings(), database_url)
    code, output = await _run(database_url, *QUICK)
    assert (code, output.strip()) == (0, f"schema ready: {', '.join(ALL)}")


async def test_an_older_schema_waits_and_a_newer_one_does_not(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await migrate(Settings(), database_url)
    collector = registry.BY_NAME["collector"].migrations
    assert collector is not None
    await collector.downgrade(database_url, "0001")

    ready, output = await _wait_here(database_url, ALL, capsys)
    assert not ready
    assert f"collector: at 0001, this image needs {collector.head_revision()}" in output
    assert "monitor" not in output.replace("workermon-migrate", "")
    # Only the targets named are waited for.
    assert (await _wait_here(database_url, ["monitor", "incidents"], capsys))[0]

    # A revision this image does not ship was written by a newer one (the Job of a rolling update).
    await _set_revision(database_url, collector.version_table, "9999_from_a_newer_image")
    assert await _wait_here(database_url, ALL, capsys) == (True, f"schema ready: {', '.join(ALL)}\n")


async def test_an_unreachable_database_is_waited_for(capsys: pytest.CaptureFixture[str]) -> None:
    ready, output = await _wait_here("postgresql+psycopg://nobody@127.0.0.1:1/none", ALL, capsys)
    assert not ready
    assert "collector: database not answering" in output


def test_a_target_without_migrations_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        script.main(["gateway", *QUICK])
    assert stopped.value.code == 2
    assert "no migrations for gateway" in capsys.readouterr().err
