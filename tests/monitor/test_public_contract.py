"""MonitorService's messages are its own: they import no internal service's proto, and every one
filled from an internal message still mirrors it field for field."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf.message import Message

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core.protos import mirror_mismatches
from workermon_monitor import public

ROOT = Path(__file__).resolve().parents[2]


def test_monitor_proto_imports_no_internal_service() -> None:
    imports = [
        line.split('"')[1]
        for line in (ROOT / "proto/workermon/monitor/v1/monitor_service.proto").read_text().splitlines()
        if line.startswith("import ")
    ]
    internal = [
        path for path in imports if path.startswith("workermon/") and not path.startswith("workermon/common/")
    ]
    assert internal == []
    assert {d.name for d in pb.DESCRIPTOR.dependencies if d.package.startswith("workermon.")} == {
        "workermon/common/v1/access.proto"
    }


@pytest.mark.parametrize(("mine", "theirs"), public.MIRRORS, ids=lambda m: m.DESCRIPTOR.full_name)
def test_public_message_mirrors_its_source(mine: type[Message], theirs: type[Message]) -> None:
    assert mirror_mismatches(mine.DESCRIPTOR, theirs.DESCRIPTOR) == []


def test_the_worker_status_filter_converts_to_the_internal_one_by_name() -> None:
    for value in pb.WorkerStatus.values():
        assert public.worker_status(value) == value
