"""`workermon up` as a service manager would start it (umask 022, no terminal, output to a kept log):
its data directory and files are the owner's alone, and the first admin's password is nowhere in its
output, only in the owner-only file the banner names."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.support.processes import hermetic_env
from workermon_gateway.users import UserStore

READY = "Stop with Ctrl-C."


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_up_keeps_files_private_and_the_password_out_of_its_output(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    # `prefix` deletes the suite's keys under it afterwards.
    data = tmp_path / "data"
    data.mkdir()
    os.chmod(data, 0o755)
    env = {
        **hermetic_env(),
        "WORKERMON_DATA_DIR": str(data),
        "REDIS_URL": redis_url,
        "WORKERMON_REDIS_PREFIX": prefix,
        "WORKERMON_GRPC_PORT": "0",
        "WORKERMON_HTTP_PORT": "0",
        "WORKERMON_COLLECTOR_SCHEDULE": "false",
        "WORKERMON_SHUTDOWN_GRACE_SECONDS": "1",
        "DEMO": "0",
    }
    # A session of its own: no controlling terminal, as under a service manager or in a container.
    process = subprocess.Popen(
        [sys.executable, "-m", "workermon_cli.main", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        umask=0o022,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.extend(iter(process.stdout.readline, "")), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.extend(iter(process.stderr.readline, "")), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(READY in line for line in out):
            assert process.poll() is None, (
                f"workermon up exited {process.returncode}:\n{''.join(err)[-3000:]}"
            )
            assert time.monotonic() < deadline, f"workermon up not ready within 60 s:\n{''.join(err)[-3000:]}"
            time.sleep(0.05)
        assert _mode(data) == 0o700
        for name in ("workermon.db", "users.json", "jwt-secret"):
            assert _mode(data / name) == 0o600, name
        keeper = data / "first-admin-password"
        assert _mode(keeper) == 0o600
        password = keeper.read_text().strip()
        assert UserStore(data / "users.json").verify("admin", password) == "admin"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        for reader in readers:
            reader.join(10)
    printed = "".join(out) + "".join(err)
    assert str(keeper.resolve()) in "".join(out)
    # Neither the banner (stdout) nor the structured logs (stderr) carry it.
    assert password not in printed
    assert "admin" in printed and '"event"' in "".join(err)
