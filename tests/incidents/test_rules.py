"""The detection rules as pure functions: threshold edges, minimum volume, missing data, overrides."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.suites import Config
from workermon_core.settings import ConfigError
from workermon_incidents import rules
from workermon_incidents.rules import IncidentType, Point, QueueWindow, RuleBook, RuleConfig, WorkerState
from workermon_incidents.settings import IncidentSettings
from workermon_queues.settings import QueueSettings

END = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)


def window(minutes: Sequence[dict[str, Any] | None], queue: str = "emails") -> QueueWindow:
    """Minutes oldest first, the last one ending at END; None is a gap."""
    points = []
    for i, values in enumerate(minutes):
        minute = END - timedelta(minutes=len(minutes) - i)
        if values is None:
            points.append(Point(minute=minute, has_data=False))
        else:
            points.append(Point(minute=minute, has_data=True, **{"online_workers": 1, **values}))
    return QueueWindow(queue, tuple(points))


# --- HIGH_FAILURE_RATE --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completed", "failed", "firing"),
    [
        (19, 1, False),  # exactly 5%: not above
        (18, 2, True),  # 10% of 20
        (1, 1, False),  # 1 failure of 2 jobs pages nobody (below the minimum volume)
        (9, 10, False),  # 19 jobs: still below 20
        (10, 10, True),  # 20 jobs at 50%
        (0, 0, False),
    ],
)
def test_failure_rate_threshold_and_minimum_volume(completed: int, failed: int, firing: bool) -> None:
    finding = rules.failure_rate(window([{"completed": completed, "failed": failed}]), RuleConfig())
    assert finding.firing is firing
    assert finding.fingerprint == "HIGH_FAILURE_RATE:queue:emails"


def test_failure_rate_sums_the_window_only() -> None:
    config = RuleConfig(failure_rate_window_minutes=3)
    old_failures = [{"completed": 0, "failed": 50}] + [{"completed": 10, "failed": 0}] * 3
    assert rules.failure_rate(window(old_failures), config).firing is False
    assert rules.failure_rate(window(old_failures), RuleConfig()).firing is True


def test_failure_rate_is_unknown_when_the_newest_minute_is_missing() -> None:
    assert rules.failure_rate(window([{"completed": 1, "failed": 50}, None]), RuleConfig()).firing is None


# --- QUEUE_BACKLOG ------------------------------------------------------------------------------------


def test_backlog_needs_more_than_the_threshold_and_growth() -> None:
    config = RuleConfig(backlog_threshold=200, backlog_pending_minutes=2)
    growing = window(
        [{"waiting": 150, "completed": 5}, {"waiting": 190, "completed": 5}, {"waiting": 201, "completed": 5}]
    )
    assert rules.backlog(growing, config).firing is True
    at_threshold = window(
        [{"waiting": 150, "completed": 5}, {"waiting": 190, "completed": 5}, {"waiting": 200, "completed": 5}]
    )
    assert rules.backlog(at_threshold, config).firing is False
    flat = window([{"waiting": 500, "completed": 5}] * 3)
    assert rules.backlog(flat, config).firing is False
    # Once open, a flat backlog above the threshold keeps it open.
    assert rules.backlog(flat, config, is_open=True).firing is True
    paused = window([{"waiting": 150}, {"waiting": 190}, {"waiting": 900, "paused": True}])
    assert rules.backlog(paused, config).firing is False


def test_stuck_queue_fires_without_a_pending_period() -> None:
    config = RuleConfig(stuck_minutes=3)
    stuck = rules.backlog(window([{"waiting": 1, "completed": 0}] * 3), config)
    assert stuck.firing is True and stuck.labels["variant"] == "stuck" and stuck.pending == timedelta(0)
    one_completion = window([{"waiting": 1}, {"waiting": 1, "completed": 1}, {"waiting": 1}])
    assert rules.backlog(one_completion, config).firing is False
    with_gap = window([{"waiting": 1}, None, {"waiting": 1}])
    assert rules.backlog(with_gap, config).firing is False


def test_no_workers() -> None:
    config = RuleConfig()
    nobody = window([{"waiting": 3, "online_workers": 0}])
    finding = rules.no_workers(nobody, config)
    assert finding.firing is True and finding.fingerprint == "WORKER_DOWN:queue:emails"
    # Jobs completing means someone (an uninstrumented worker) is working.
    assert (
        rules.no_workers(window([{"waiting": 3, "online_workers": 0, "completed": 2}]), config).firing
        is False
    )
    assert rules.no_workers(window([{"waiting": 0, "online_workers": 0}]), config).firing is False
    assert rules.no_workers(window([{"waiting": 3, "online_workers": None}]), config).firing is None


# --- SLOW_PROCESSING ----------------------------------------------------------------------------------


def slow_window(baseline_p95: float, latest_p95: float, minutes: int = 30) -> QueueWindow:
    base = [{"processing_samples": 10, "processing_p95_ms": baseline_p95}] * minutes
    return window([*base, {"processing_samples": 10, "processing_p95_ms": latest_p95}])


def test_slow_processing_uses_the_larger_of_floor_and_baseline_multiple() -> None:
    config = RuleConfig(
        slow_processing_factor=3, slow_processing_floor_ms=1000, slow_processing_pending_minutes=1
    )
    # Baseline 100 ms: 3x is 300, the floor 1000 wins.
    assert rules.slow_processing(slow_window(100, 999), config).firing is False
    assert rules.slow_processing(slow_window(100, 1001), config).firing is True
    # Baseline 2000 ms: threshold 6000.
    assert rules.slow_processing(slow_window(2000, 6000), config).firing is False
    finding = rules.slow_processing(slow_window(2000, 6001), config)
    assert finding.firing is True and finding.threshold == 6000
    # While open, the threshold it fired with holds even if the baseline has drifted.
    assert rules.slow_processing(slow_window(5000, 6001), config, open_threshold=6000).firing is True


def test_slow_processing_needs_a_baseline() -> None:
    config = RuleConfig(slow_processing_pending_minutes=1)
    assert rules.slow_processing(slow_window(100, 50_000, minutes=4), config).firing is False
    idle = window([*([{"processing_samples": 10, "processing_p95_ms": 100}] * 30), {"processing_samples": 0}])
    assert rules.slow_processing(idle, config).firing is False


# --- WORKER_DOWN, STATS_STALE -------------------------------------------------------------------------


def test_worker_down_after_missed_beats_without_goodbye() -> None:
    def worker(silence: float, reason: str = "missed beats", online: bool = False) -> WorkerState:
        return WorkerState("w-1", online, END - timedelta(seconds=silence), reason, "host", ("emails",), 2)

    kwargs: dict[str, Any] = {"beat_interval_seconds": 10, "missed_beats": 4, "quiet_minutes": 5}
    assert rules.worker_down(worker(39.9), END, **kwargs).firing is False
    down = rules.worker_down(worker(40), END, **kwargs)
    assert down.firing is True and down.fingerprint == "WORKER_DOWN:worker:w-1" and down.affected_jobs == 2
    assert rules.worker_down(worker(600, "goodbye: deploy"), END, **kwargs).firing is False
    assert rules.worker_down(worker(0, "", online=True), END, **kwargs).firing is False


def test_stats_stale_counts_from_the_end_of_the_newest_minute() -> None:
    assert rules.stats_stale(None, END, stale_minutes=5, quiet_minutes=5) is None
    fresh = rules.stats_stale(END - timedelta(minutes=5, seconds=59), END, stale_minutes=5, quiet_minutes=5)
    stale = rules.stats_stale(END - timedelta(minutes=6), END, stale_minutes=5, quiet_minutes=5)
    assert fresh is not None and fresh.firing is False
    assert stale is not None and stale.firing is True and stale.fingerprint == "STATS_STALE:suite"


# --- configuration -------------------------------------------------------------------------------------


def test_per_queue_overrides_from_settings() -> None:
    settings = Config(
        backlog_thresholds="reports=50",
        incident_rules='{"emails": {"failure_rate_threshold": 0.2, "failure_rate_min_jobs": 5}, '
        '"reports": {"enabled": false}}',
        failure_rate_threshold=0.1,
    )
    book = RuleBook.from_settings(settings.of(IncidentSettings), settings.of(QueueSettings))
    assert book.for_queue("other").failure_rate_threshold == 0.1
    emails = book.for_queue("emails")
    assert (emails.failure_rate_threshold, emails.failure_rate_min_jobs) == (0.2, 5)
    assert book.for_queue("reports").backlog_threshold == 50 and not book.for_queue("reports").enabled
    # 3 of 10 failed: 30% is above emails' 20% (min 5 jobs), and above the default 10% too but under 20 jobs.
    data = window([{"completed": 7, "failed": 3}])
    assert rules.failure_rate(data, emails).firing is True
    assert rules.failure_rate(data, book.for_queue("other")).firing is False
    assert rules.queue_findings(data, book.for_queue("reports")) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{nope", "WORKERMON_INCIDENT_RULES: not valid JSON"),
        ('["emails"]', "WORKERMON_INCIDENT_RULES: must be an object"),
        ('{"emails": 3}', "WORKERMON_INCIDENT_RULES: emails: must be an object"),
        ('{"emails": {"colour": 1}}', "WORKERMON_INCIDENT_RULES: emails.colour: unknown key"),
        (
            '{"emails": {"failure_rate_threshold": 2}}',
            "WORKERMON_INCIDENT_RULES: emails.failure_rate_threshold:",
        ),
        ('{"emails": {"backlog_threshold": "many"}}', "WORKERMON_INCIDENT_RULES: emails.backlog_threshold:"),
    ],
)
def test_bad_overrides_name_the_variable_and_key(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="invalid configuration") as caught:
        Config(incident_rules=text).of(IncidentSettings)
    assert fragment in str(caught.value)


def test_window_covers_every_rule() -> None:
    assert RuleConfig().window_minutes() >= 30 + 5 + 1
    assert IncidentType.STATS_STALE.value == "STATS_STALE"
