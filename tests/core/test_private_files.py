"""The data directory and what the suite keeps in it are the owner's alone, after a real start; the
first admin's generated password is shown on the terminal only, never in kept output or logs."""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from sqlalchemy import text

from tests.support.bull import delete_suite_keys
from tests.support.suites import Config
from workermon_cli.runtime import migrate, open_dependencies, start_suite
from workermon_cli.user_cmd import FIRST_PASSWORD_FILE, ensure_first_admin, show_first_password
from workermon_core.auth import load_or_create_secret
from workermon_core.logging import configure_logging
from workermon_core.private_files import secure_data_dir
from workermon_core.redis_store import connect


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _log_as_the_suite(fmt: str) -> None:
    configure_logging("debug", fmt)
    # No logger may keep this test's captured stderr once the test is over.
    structlog.configure(cache_logger_on_first_use=False)


@pytest.fixture
def structured_logs() -> Iterator[None]:
    """Put the logging back after a test that set it as `workermon up` does (set up after capsys, so
    it is put back before the captured stderr closes)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Start as a careless service manager might: umask 022 (files 0644, directories 0755)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


async def test_a_started_suite_keeps_its_files_private(
    tmp_path: Path,
    loose_umask: None,
    redis_url: str,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
    structured_logs: None,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    # A file an older version left readable by everyone.
    (data / "notes").write_text("kept")
    os.chmod(data / "notes", 0o644)
    config = Config(
        data_dir=data,
        grpc_port=0,
        http_port=0,
        redis_url=redis_url,
        redis_prefix=prefix,
        # Where the suite puts it by default; named, so a DATABASE_URL of the caller is not used.
        database_url=f"sqlite+aiosqlite:///{data / 'workermon.db'}",
        collector_schedule=False,
        readiness_interval_seconds=0.2,
        shutdown_grace_seconds=1.0,
    )
    settings = config.core
    # What `workermon up` does, in its order: migrate, the first admin, then start everything.
    _log_as_the_suite("json")
    await migrate(settings)
    first = ensure_first_admin(settings, config.gateway)
    assert first is not None and first.password is not None
    deps = open_dependencies(settings, overrides=config.values)
    suite = await start_suite(settings, deps=deps, freeze=False)
    try:
        # Run as a service: no terminal to show it on.
        line = show_first_password(first, data, open_terminal=lambda: None)
        print(line)
        assert _mode(data) == 0o700
        for name in ("workermon.db", "users.json", "jwt-secret", "notes"):
            assert _mode(data / name) == 0o600, name
        # SQLite makes these itself (WAL mode) while a connection of the suite's is open.
        async with deps.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            for sidecar in ("workermon.db-wal", "workermon.db-shm"):
                assert _mode(data / sidecar) == 0o600, sidecar
    finally:
        await suite.stop()
        client = connect(redis_url)
        await delete_suite_keys(client, prefix)
        await client.aclose()
    output = capsys.readouterr()
    # Nowhere in what was printed or logged (structured logs go to the captured output); only in the
    # owner-only file the banner names.
    assert first.password not in output.out + output.err
    keeper = data / FIRST_PASSWORD_FILE
    assert _mode(keeper) == 0o600
    assert keeper.read_text().strip() == first.password
    assert str(keeper.resolve()) in output.out


def test_the_password_goes_to_the_terminal_and_nowhere_else(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    structured_logs: None,
) -> None:
    _log_as_the_suite("console")
    data = tmp_path / "data"
    first = ensure_first_admin(Config(data_dir=data).core, Config(data_dir=data).gateway)
    assert first is not None and first.password is not None
    terminal = io.StringIO()
    with caplog.at_level(logging.DEBUG):
        line = show_first_password(first, data, open_terminal=lambda: terminal)
        structlog.get_logger("test").info("started", banner=line)
    assert first.password in terminal.getvalue()
    assert first.password not in line
    output = capsys.readouterr()
    assert first.password not in output.out + output.err + caplog.text
    assert not (data / FIRST_PASSWORD_FILE).exists()


def test_a_directory_not_ours_to_change_does_not_stop_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loose_umask: None
) -> None:
    # As a Kubernetes emptyDir is to the pod's user (root's, with the fsGroup): chmod is refused.
    data = tmp_path / "volume"
    data.mkdir()
    os.chmod(data, 0o2775)

    def refused(path: object, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refused)
    secure_data_dir(data)
    assert load_or_create_secret(None, data)
    # The secret itself is created owner-only all the same (by open's mode, not chmod).
    assert _mode(data / "jwt-secret") == 0o600
