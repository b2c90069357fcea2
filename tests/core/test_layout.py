"""The structure the suite promises: the queue library stands alone, and one registry lists the targets."""

from __future__ import annotations

import subprocess
import sys

from workermon_cli import registry


def test_queue_library_pulls_in_no_server_code() -> None:
    code = (
        "import sys, workermon_queues, workermon_queues.bullmq, workermon_queues.settings\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'workermon_core', 'sqlalchemy', 'alembic', 'grpc'})\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_registry_names_every_target_once() -> None:
    names = [module.name for module in registry.MODULES]
    assert names == ["heartbeat", "collector", "monitor", "incidents", "gateway"]
    assert [m.name for m in registry.with_migrations()] == ["collector", "monitor", "incidents"]
    assert [m.name for m in registry.resolve("services")] == names[:4]
    assert [m.name for m in registry.resolve("gateway")] == ["gateway"]
