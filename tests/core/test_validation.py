"""The shared input checkers: each refusal names the field and the limit; accepted values come back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from workermon.monitor.v1 import monitor_service_pb2 as pb
from workermon_core import validation
from workermon_core.errors import InvalidArgument


def refused(call: object, *args: object, **kwargs: object) -> InvalidArgument:
    assert callable(call)
    with pytest.raises(InvalidArgument) as caught:
        call(*args, **kwargs)
    return caught.value


def test_text_limits_name_the_field_and_the_limit() -> None:
    assert validation.text("x" * 10, "note", 10) == "x" * 10
    err = refused(validation.text, "x" * 11, "note", 10)
    assert err.field == "note" and "at most 10 characters" in err.description
    assert refused(validation.text, "", "name", 10, required=True).description == "is required"
    assert "control" in refused(validation.text, "a\nb", "name", 10, control=False).description
    assert "NUL" in refused(validation.text, "a\x00b", "note", 10).description
    assert validation.text("two\nlines", "note", 10) == "two\nlines"
    assert refused(validation.reason, "r" * 501).field == "reason"
    assert refused(validation.queue_names, ["ok", ""], "queues").field == "queues[1]"
    assert "at most 1,000" in refused(validation.queue_names, ["q"] * 1001, "queues").description


def test_enums_outside_the_proto_are_refused() -> None:
    assert validation.enum_value(pb.JOB_STATE_FAILED, pb.JobState.DESCRIPTOR, "state") == pb.JOB_STATE_FAILED
    err = refused(validation.enum_value, 999, pb.JobState.DESCRIPTOR, "state")
    assert err.field == "state" and "999" in err.description and "FAILED" in err.description
    assert (
        refused(validation.enum_value, 0, pb.JobState.DESCRIPTOR, "state", unspecified=False).field == "state"
    )
    assert validation.enum_label(999, pb.JobState.DESCRIPTOR) == "999"
    assert validation.enum_label(pb.JOB_STATE_FAILED, pb.JobState.DESCRIPTOR) == "JOB_STATE_FAILED"


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [(2**62, 0), (-(2**63), 0), (253402300800, 0), (-62135596801, 0), (0, -1), (0, 1_000_000_000)],
)
def test_timestamps_outside_protobufs_range_are_refused(seconds: int, nanos: int) -> None:
    err = refused(validation.timestamp, timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos), "start_time")
    assert err.field == "start_time"


def test_timestamps_and_durations_inside_the_range_convert() -> None:
    assert validation.timestamp(timestamp_pb2.Timestamp(seconds=253402300799), "t") == datetime(
        9999, 12, 31, 23, 59, 59, tzinfo=UTC
    )
    assert validation.timestamp_ms(timestamp_pb2.Timestamp(seconds=60), "t") == 60_000
    year_one = timestamp_pb2.Timestamp(seconds=-62135596800)
    assert validation.timestamp(year_one, "t").year == 1
    assert "1970" in refused(validation.timestamp, year_one, "t", earliest=validation.EPOCH).description
    assert validation.duration(duration_pb2.Duration(seconds=-1, nanos=-500_000_000), "d") == timedelta(
        seconds=-1.5
    )
    assert validation.raw_ms(duration_pb2.Duration(seconds=2**62)) == 2**62 * 1000


@pytest.mark.parametrize(
    ("seconds", "nanos", "words"),
    [
        (2**62, 0, "315,576,000,000"),
        (1, -1, "sign of seconds"),
        (0, 1_000_000_000, "999,999,999"),
        (-1, 0, "at least 0 seconds"),
        (61, 0, "at most 60 seconds"),
    ],
)
def test_durations_outside_the_range_or_the_bounds_are_refused(seconds: int, nanos: int, words: str) -> None:
    err = refused(
        validation.duration,
        duration_pb2.Duration(seconds=seconds, nanos=nanos),
        "wait",
        minimum=timedelta(0),
        maximum=timedelta(seconds=60),
    )
    assert err.field == "wait" and words in err.description


def test_json_documents_are_bounded_in_size_and_depth() -> None:
    assert validation.json_document('{"a": [1, {"b": 2}]}', "data") == {"a": [1, {"b": 2}]}
    deep = "[" * 100_000 + "]" * 100_000
    err = refused(validation.json_document, deep, "data", max_bytes=10**6)
    assert err.field == "data" and "at most 64 levels" in err.description
    assert "64 levels" in refused(validation.json_document, "[" * 65 + "]" * 65, "data").description
    assert validation.json_depth(validation.json_document("[" * 64 + "]" * 64, "data")) == 64
    assert "bytes" in refused(validation.json_document, "1" * 20, "data", max_bytes=10).description
    assert "not valid JSON" in refused(validation.json_document, "{", "data").description
    assert "not valid JSON" in refused(validation.json_document, b"\xff", "body").description


def test_audit_fields_are_cut_and_the_cut_is_noted() -> None:
    fields = {"reason": "r" * 5000, "limit": 3, "nested": {"a": ["x" * 2000]}}
    kept = validation.bounded_fields(fields)
    assert kept["limit"] == 3 and kept["reason"].endswith("[truncated: 5,000 characters]")
    assert isinstance(kept["nested"], str) and len(kept["nested"]) < 1100
    assert kept["_truncated"] == ["reason", "nested"]
    many = validation.bounded_fields({f"k{i}": i for i in range(100)})
    assert len([k for k in many if k.startswith("k")]) == validation.MAX_AUDIT_KEYS
    assert many["_dropped_keys"] == 100 - validation.MAX_AUDIT_KEYS
    assert validation.bounded_text("a\x00b") == "a\ufffdb"
    small = {"reason": "deploy", "limit": 0}
    assert validation.bounded_fields(small) == small
