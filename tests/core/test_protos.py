"""Timestamp helpers and mirrored public messages (workermon_core.protos)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.timestamp_pb2 import Timestamp

from workermon.heartbeat.v1 import heartbeat_service_pb2 as hb_pb
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon_core.protos import from_ms, mirror_mismatches, recast, set_time, stamp


def test_times_from_datetimes_and_milliseconds() -> None:
    moment = datetime(2026, 12, 4, 10, 30, 15, 250_000, tzinfo=UTC)
    ms = int(moment.timestamp() * 1000)
    assert from_ms(ms) == moment
    assert stamp(moment) == stamp(ms)
    assert stamp(ms).ToMilliseconds() == ms
    unset = Timestamp()
    set_time(unset, None)
    set_time(unset, 0)
    assert unset == Timestamp()


def test_recast_keeps_every_mirrored_field_and_drops_the_rest() -> None:
    internal = hb_pb.Worker(status=hb_pb.WORKER_STATUS_ONLINE, offline_reason="")
    internal.report.worker_id = "w-1"
    internal.report.labels["zone"] = "a"
    internal.report.gauges.custom["browsers"] = 3.0
    internal.report.state = hb_pb.WORKER_STATE_QUIET
    internal.report.timings.add(queue="emails").processing.bins[12] = 4.0
    internal.last_seen_time.FromMilliseconds(1_700_000_000_000)

    public = recast(internal, mon_pb.Worker)

    assert public.report.worker_id == "w-1"
    assert dict(public.report.labels) == {"zone": "a"}
    assert public.report.gauges.custom["browsers"] == 3.0
    assert public.report.state == mon_pb.WORKER_STATE_QUIET
    assert public.status == mon_pb.WORKER_STATUS_ONLINE
    assert public.last_seen_time.ToMilliseconds() == 1_700_000_000_000
    # The duration sketches are internal: not carried, not even as unknown fields.
    assert b"emails" not in public.SerializeToString()


def _message(name: str, fields: list[tuple[str, int, int]]) -> type:
    """A throwaway message class built at run time: (name, number, FieldDescriptorProto type) fields."""
    file = descriptor_pb2.FileDescriptorProto(name=f"mirror_test_{name}.proto", package="mirrortest")
    message = file.message_type.add(name=name)
    for field_name, number, kind in fields:
        message.field.add(name=field_name, number=number, type=kind, label=1)  # LABEL_OPTIONAL
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"mirrortest.{name}"))


def test_mirror_mismatches_names_a_renumbered_a_retyped_and_a_missing_field() -> None:
    string, int64 = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    )
    source = _message("Source", [("id", 1, string), ("count", 2, int64), ("note", 3, string)])
    exact = _message("Exact", [("id", 1, string), ("count", 2, int64)])
    drifted = _message(
        "Drifted", [("id", 1, string), ("count", 2, string), ("note", 4, string), ("extra", 9, string)]
    )

    assert mirror_mismatches(exact.DESCRIPTOR, source.DESCRIPTOR) == []
    problems = mirror_mismatches(drifted.DESCRIPTOR, source.DESCRIPTOR)
    assert len(problems) == 3, problems
    assert any("Drifted.note" in p for p in problems)
    assert any("Drifted.count" in p and "type" in p for p in problems)
    assert any("Drifted.extra" in p for p in problems)


def test_mirror_mismatches_compares_enum_values() -> None:
    assert mirror_mismatches(mon_pb.Worker.DESCRIPTOR, hb_pb.Worker.DESCRIPTOR) == []
    # Against an unrelated message of the same shape only in part, nested types are checked too.
    problems = mirror_mismatches(mon_pb.Command.DESCRIPTOR, hb_pb.WorkerCommand.DESCRIPTOR)
    assert problems
