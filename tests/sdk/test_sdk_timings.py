"""Job timings wait for a confirmed beat, merge while waiting, and stay bounded."""

from __future__ import annotations

from workermon_sdk.timings import MINUTE_MS, TimingRecorder


def test_timings_stay_until_confirmed_and_merge() -> None:
    recorder = TimingRecorder()
    recorder.record("emails", 5 * MINUTE_MS + 10, 100.0, 5.0)
    first = recorder.outgoing()
    assert [(t.queue, t.minute_time.ToMilliseconds(), t.processing.count) for t in first] == [
        ("emails", 5 * MINUTE_MS, 1.0)
    ]
    # Not confirmed (the beat failed): the next beat carries it again, merged with what came since.
    recorder.record("emails", 5 * MINUTE_MS + 20, 300.0, None)
    second = recorder.outgoing()
    assert second[0].processing.count == 2 and second[0].processing.sum == 400.0
    assert second[0].wait.count == 1
    recorder.confirm()
    assert recorder.pending == 0 and recorder.outgoing() == []


def test_memory_is_bounded_dropping_oldest_minutes() -> None:
    recorder = TimingRecorder(max_entries=3)
    for minute in range(10):
        recorder.record("q", minute * MINUTE_MS, 1.0, 1.0)
    sent = recorder.outgoing()
    assert [t.minute_time.ToMilliseconds() for t in sent] == [7 * MINUTE_MS, 8 * MINUTE_MS, 9 * MINUTE_MS]


def test_zero_durations_count_without_bins() -> None:
    recorder = TimingRecorder()
    recorder.record("q", 0, 0.0, 0.0)
    sketch = recorder.outgoing()[0].processing
    assert (sketch.count, sketch.zero_count, dict(sketch.bins)) == (1.0, 1.0, {})
