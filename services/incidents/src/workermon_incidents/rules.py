"""The detection rules: pure functions from snapshot windows and worker state to findings.

A rule says, for one subject (a queue, a worker, the collector), whether its condition holds *now*:
`firing` True (holds), False (clear) or None (the data needed is missing — which never resolves an
open incident). How long it must hold before firing (the pending period) and stay clear before
resolving (the quiet period) is the engine's business; a finding only carries those durations, so
per-queue overrides reach the engine through it. Every function takes `now` explicitly: tests drive
them with any clock.
"""

from __future__ import annotations

import fnmatch
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from workermon_core.settings import ConfigError
from workermon_queues.settings import QueueSettings

from .settings import IncidentSettings

MINUTE = timedelta(minutes=1)
# Enough minutes of baseline before a queue's own p95 means anything.
MIN_BASELINE_MINUTES = 5
# A queue with waiting jobs and nobody online pages after this long, unless overridden.
DEFAULT_NO_WORKERS_PENDING_MINUTES = 2.0
RULES_ENV = "WORKERMON_INCIDENT_RULES"
# Worker findings carry their worker's labels under this prefix (routes match on them).
WORKER_LABEL_PREFIX = "worker."


class IncidentType(StrEnum):
    """The rule that raised an incident (stored as its name)."""

    QUEUE_BACKLOG = "QUEUE_BACKLOG"
    HIGH_FAILURE_RATE = "HIGH_FAILURE_RATE"
    WORKER_DOWN = "WORKER_DOWN"
    SLOW_PROCESSING = "SLOW_PROCESSING"
    STATS_STALE = "STATS_STALE"


class Severity(StrEnum):
    """How urgent an incident is."""

    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True, slots=True)
class Point:
    """One minute of one queue, as the collector recorded it (has_data False: a gap, not zeros)."""

    minute: datetime
    has_data: bool
    waiting: int = 0
    active: int = 0
    completed: int = 0
    failed: int = 0
    paused: bool = False
    processing_samples: int = 0
    processing_p95_ms: float = 0.0
    online_workers: int | None = None


@dataclass(frozen=True, slots=True)
class QueueWindow:
    """A queue's minutes, oldest first, one per minute, ending with the newest minute evaluated."""

    queue: str
    points: tuple[Point, ...]

    @property
    def latest(self) -> Point | None:
        """The newest minute, when it has data (the present is unknown otherwise)."""
        if not self.points or not self.points[-1].has_data:
            return None
        return self.points[-1]

    def last(self, minutes: int) -> tuple[Point, ...]:
        """The newest `minutes` minutes, gaps included."""
        return self.points[-minutes:] if minutes > 0 else ()


@dataclass(frozen=True, slots=True)
class WorkerState:
    """A worker as HeartbeatService last described it."""

    worker_id: str
    online: bool
    last_seen: datetime
    offline_reason: str = ""
    hostname: str = ""
    queues: tuple[str, ...] = ()
    active_jobs: int = 0
    # The worker's own labels: rule overrides and notification routes match on them.
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """The thresholds of every rule for one queue (defaults from Settings, then per-queue overrides)."""

    failure_rate_threshold: float = 0.05
    failure_rate_window_minutes: int = 10
    failure_rate_min_jobs: int = 20
    failure_rate_pending_minutes: float = 1.0
    backlog_threshold: int = 200
    backlog_pending_minutes: float = 5.0
    stuck_minutes: float = 10.0
    no_workers_pending_minutes: float = DEFAULT_NO_WORKERS_PENDING_MINUTES
    slow_processing_factor: float = 3.0
    slow_processing_floor_ms: float = 1000.0
    slow_processing_baseline_minutes: int = 30
    slow_processing_pending_minutes: float = 5.0
    incident_quiet_minutes: float = 5.0
    enabled: bool = True
    # WORKER_DOWN (a worker): None leaves it to the engine's setting (EngineConfig).
    worker_down_missed_beats: int | None = None

    def window_minutes(self) -> int:
        """How many minutes of history the queue rules read."""
        slow = self.slow_processing_baseline_minutes + int(self.slow_processing_pending_minutes + 0.999) + 1
        backlog = int(max(self.backlog_pending_minutes, 1) + 0.999) + 1
        return max(self.failure_rate_window_minutes, int(self.stuck_minutes + 0.999), backlog, slow)


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule's verdict on one subject."""

    type: IncidentType
    queue: str | None
    worker_id: str | None
    firing: bool | None
    severity: Severity = Severity.WARNING
    title: str = ""
    description: str = ""
    recommended_action: str = ""
    affected_jobs: int = 0
    value: float = 0.0
    threshold: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    pending: timedelta = timedelta(0)
    quiet: timedelta = timedelta(minutes=5)

    @property
    def fingerprint(self) -> str:
        """The deduplication key: type and subject."""
        return fingerprint(self.type, self.queue, self.worker_id)


def fingerprint(kind: IncidentType, queue: str | None, worker_id: str | None) -> str:
    """ "<type>:queue:<queue>", "<type>:worker:<id>", or "<type>:suite" for suite-wide conditions."""
    if worker_id:
        return f"{kind.value}:worker:{worker_id}"
    if queue:
        return f"{kind.value}:queue:{queue}"
    return f"{kind.value}:suite"


def _minutes(value: float) -> timedelta:
    return timedelta(minutes=value)


def _unknown(kind: IncidentType, config: RuleConfig, queue: str | None, worker: str | None = None) -> Finding:
    return Finding(kind, queue, worker, None, quiet=_minutes(config.incident_quiet_minutes))


# --- queue rules ------------------------------------------------------------------------------------


def failure_rate(window: QueueWindow, config: RuleConfig) -> Finding:
    """HIGH_FAILURE_RATE: final failures / finished jobs over the window, above the threshold.

    Below the minimum volume the condition is clear, not unknown: one failure of two jobs pages nobody.
    """
    kind, queue = IncidentType.HIGH_FAILURE_RATE, window.queue
    if window.latest is None:
        return _unknown(kind, config, queue)
    span = [p for p in window.last(config.failure_rate_window_minutes) if p.has_data]
    completed = sum(p.completed for p in span)
    failed = sum(p.failed for p in span)
    total = completed + failed
    rate = failed / total if total else 0.0
    firing = total >= config.failure_rate_min_jobs and rate > config.failure_rate_threshold
    minutes = config.failure_rate_window_minutes
    return Finding(
        kind,
        queue,
        None,
        firing,
        severity=Severity.CRITICAL,
        title=f"High failure rate on {queue}",
        description=(
            f"{failed} of {total} jobs failed in the last {minutes} min ({rate:.1%}); "
            f"threshold {config.failure_rate_threshold:.1%} "
            f"over at least {config.failure_rate_min_jobs} jobs."
        ),
        recommended_action=(
            f"Open the failed jobs of {queue} and check their error categories; fix the cause, "
            "then retry the failed jobs."
        ),
        affected_jobs=failed,
        value=rate,
        threshold=config.failure_rate_threshold,
        labels={"window_minutes": str(minutes), "finished": str(total)},
        pending=_minutes(config.failure_rate_pending_minutes),
        quiet=_minutes(config.incident_quiet_minutes),
    )


def backlog(window: QueueWindow, config: RuleConfig, *, is_open: bool = False) -> Finding:
    """QUEUE_BACKLOG: waiting above the threshold and growing, or "stuck" (waiting, nothing completes).

    Growth is needed to start an incident, not to keep it: a backlog that stops growing at 5,000
    waiting jobs is still one (hysteresis). A paused queue holds its jobs on purpose: clear.
    Stuck needs every one of its minutes to have data; it fires without a pending period, its
    N minutes being the wait.
    """
    kind, queue = IncidentType.QUEUE_BACKLOG, window.queue
    latest = window.latest
    if latest is None:
        return _unknown(kind, config, queue)
    quiet = _minutes(config.incident_quiet_minutes)
    if latest.paused:
        return Finding(kind, queue, None, False, quiet=quiet, labels={"paused": "true"})
    stuck_span = window.last(int(config.stuck_minutes + 0.999))
    stuck = len(stuck_span) >= config.stuck_minutes and all(
        p.has_data and p.waiting > 0 and p.completed == 0 for p in stuck_span
    )
    lookback = int(max(config.backlog_pending_minutes, 1) + 0.999)
    earlier = [p for p in window.last(lookback + 1)[:-1] if p.has_data]
    growing = bool(earlier) and latest.waiting > earlier[0].waiting
    high = latest.waiting > config.backlog_threshold
    if stuck:
        return Finding(
            kind,
            queue,
            None,
            True,
            severity=Severity.CRITICAL,
            title=f"Queue {queue} is stuck",
            description=(
                f"{latest.waiting} jobs waiting and none completed in the last "
                f"{config.stuck_minutes:g} min ({latest.active} active)."
            ),
            recommended_action=(
                f"Check that workers of {queue} are running and not blocked (stalled jobs, a dependency "
                "down, a full concurrency); restart or scale them."
            ),
            affected_jobs=latest.waiting,
            value=float(latest.waiting),
            threshold=0.0,
            labels={"variant": "stuck"},
            pending=timedelta(0),
            quiet=quiet,
        )
    firing = high and (growing or is_open)
    return Finding(
        kind,
        queue,
        None,
        firing,
        severity=Severity.WARNING,
        title=f"Backlog growing on {queue}",
        description=(
            f"{latest.waiting} jobs waiting (threshold {config.backlog_threshold})"
            + (f", up from {earlier[0].waiting} {lookback} min earlier." if earlier else ".")
        ),
        recommended_action=(
            f"Add workers or concurrency to {queue}, or find what slowed its workers down; "
            "check the producers for a burst."
        ),
        affected_jobs=latest.waiting,
        value=float(latest.waiting),
        threshold=float(config.backlog_threshold),
        labels={"variant": "growing"},
        pending=_minutes(config.backlog_pending_minutes),
        quiet=quiet,
    )


def no_workers(window: QueueWindow, config: RuleConfig) -> Finding:
    """WORKER_DOWN (no workers): jobs wait, no instrumented worker is online, and nothing completes.

    The last condition keeps queues drained by uninstrumented workers (which HeartbeatService cannot
    see) from paging: if jobs complete, someone is working.
    """
    kind, queue = IncidentType.WORKER_DOWN, window.queue
    latest = window.latest
    if latest is None or latest.online_workers is None:
        return _unknown(kind, config, queue)
    firing = not latest.paused and latest.waiting > 0 and latest.online_workers == 0 and latest.completed == 0
    return Finding(
        kind,
        queue,
        None,
        firing,
        severity=Severity.CRITICAL,
        title=f"No workers for {queue}",
        description=f"{latest.waiting} jobs waiting and no online worker takes jobs from {queue}.",
        recommended_action=f"Start workers for {queue}, or check why they cannot reach Redis or the monitor.",
        affected_jobs=latest.waiting,
        value=0.0,
        threshold=1.0,
        labels={"variant": "no_workers"},
        pending=_minutes(config.no_workers_pending_minutes),
        quiet=_minutes(config.incident_quiet_minutes),
    )


def slow_processing(
    window: QueueWindow, config: RuleConfig, *, open_threshold: float | None = None
) -> Finding:
    """SLOW_PROCESSING: the newest minute's p95 above max(floor, factor x the queue's own baseline).

    The baseline is the median per-minute p95 over `slow_processing_baseline_minutes` minutes before
    the pending span (so the slowdown being judged is not part of it). While an incident is open its
    threshold stays the one it fired with: a long slowdown must not become its own baseline.
    A minute in which nothing finished is clear (nothing was slow); a gap is unknown.
    """
    kind, queue = IncidentType.SLOW_PROCESSING, window.queue
    latest = window.latest
    if latest is None:
        return _unknown(kind, config, queue)
    quiet = _minutes(config.incident_quiet_minutes)
    recent = int(config.slow_processing_pending_minutes + 0.999) + 1
    span = window.points[:-recent][-config.slow_processing_baseline_minutes :]
    samples = [p.processing_p95_ms for p in span if p.has_data and p.processing_samples > 0]
    baseline = statistics.median(samples) if len(samples) >= MIN_BASELINE_MINUTES else None
    if open_threshold is not None:
        threshold: float | None = open_threshold
    elif baseline is not None:
        threshold = max(config.slow_processing_floor_ms, config.slow_processing_factor * baseline)
    else:
        threshold = None
    p95 = latest.processing_p95_ms
    firing = threshold is not None and latest.processing_samples > 0 and p95 > threshold
    base_text = f"{baseline:.0f} ms" if baseline is not None else "not enough history"
    return Finding(
        kind,
        queue,
        None,
        firing,
        severity=Severity.WARNING,
        title=f"Slow processing on {queue}",
        description=(
            f"p95 processing time {p95:.0f} ms over {latest.processing_samples} jobs in the last minute; "
            f"threshold {threshold or 0:.0f} ms (baseline {base_text}, "
            f"x{config.slow_processing_factor:g}, floor {config.slow_processing_floor_ms:.0f} ms)."
        ),
        recommended_action=(
            f"Look at what {queue}'s jobs wait on (a database, an API, CPU); check recent deploys "
            "and the workers' CPU and memory."
        ),
        affected_jobs=latest.processing_samples,
        value=p95,
        threshold=threshold or 0.0,
        labels={"baseline_ms": f"{baseline:.0f}" if baseline is not None else ""},
        pending=_minutes(config.slow_processing_pending_minutes),
        quiet=quiet,
    )


def queue_findings(
    window: QueueWindow, config: RuleConfig, open_thresholds: Mapping[str, float] | None = None
) -> list[Finding]:
    """Every queue rule over one window; `open_thresholds` maps open incidents' fingerprints to thresholds."""
    if not config.enabled:
        return []
    opened = open_thresholds or {}
    backlog_fp = fingerprint(IncidentType.QUEUE_BACKLOG, window.queue, None)
    slow_fp = fingerprint(IncidentType.SLOW_PROCESSING, window.queue, None)
    return [
        failure_rate(window, config),
        backlog(window, config, is_open=backlog_fp in opened),
        no_workers(window, config),
        slow_processing(window, config, open_threshold=opened.get(slow_fp)),
    ]


# --- suite-wide rules ---------------------------------------------------------------------------------


def worker_down(
    worker: WorkerState,
    now: datetime,
    *,
    beat_interval_seconds: float,
    missed_beats: int,
    quiet_minutes: float,
) -> Finding:
    """WORKER_DOWN: an instrumented worker stopped beating without saying goodbye.

    A goodbye is a planned stop: clear. Firing needs `missed_beats` beat intervals of silence, which
    is the rule's own wait (no pending period on top).
    """
    kind = IncidentType.WORKER_DOWN
    quiet = _minutes(quiet_minutes)
    silence = (now - worker.last_seen).total_seconds()
    limit = beat_interval_seconds * missed_beats
    said_goodbye = worker.offline_reason.startswith("goodbye")
    firing = not worker.online and not said_goodbye and silence >= limit
    queues = ", ".join(worker.queues) or "no queue"
    return Finding(
        kind,
        None,
        worker.worker_id,
        firing,
        severity=Severity.WARNING,
        title=f"Worker {worker.worker_id} is down",
        description=(
            f"No beat from {worker.worker_id} on {worker.hostname or 'an unknown host'} for {silence:.0f} s "
            f"({missed_beats} beats of {beat_interval_seconds:g} s missed) and no goodbye; it took jobs "
            f"from {queues} and held {worker.active_jobs} of them."
        ),
        recommended_action=(
            "Check the host and the process (crash, out of memory, network); jobs it held are retried "
            "once BullMQ marks them stalled."
        ),
        affected_jobs=worker.active_jobs,
        value=silence,
        threshold=limit,
        labels={
            "variant": "missed_beats",
            "hostname": worker.hostname,
            "queues": ",".join(worker.queues),
            **{WORKER_LABEL_PREFIX + key: value for key, value in worker.labels.items()},
        },
        pending=timedelta(0),
        quiet=quiet,
    )


def stats_stale(
    newest_minute: datetime | None, now: datetime, *, stale_minutes: float, quiet_minutes: float
) -> Finding | None:
    """STATS_STALE: no snapshot for `stale_minutes`; None before anything was ever collected.

    A minute's row exists once the minute is over, so age counts from the end of the newest minute.
    """
    if newest_minute is None:
        return None
    age = max((now - (newest_minute + MINUTE)).total_seconds() / 60, 0.0)
    return Finding(
        IncidentType.STATS_STALE,
        None,
        None,
        age >= stale_minutes,
        severity=Severity.WARNING,
        title="Queue statistics are stale",
        description=(
            f"The newest snapshot is for {newest_minute:%Y-%m-%d %H:%M} UTC, {age:.0f} min ago "
            f"(threshold {stale_minutes:g} min); the other rules cannot see the queues."
        ),
        recommended_action=(
            "Check the collector (its status, its schedule, the database it writes to) and its Redis."
        ),
        value=age,
        threshold=stale_minutes,
        pending=timedelta(0),
        quiet=_minutes(quiet_minutes),
    )


# --- configuration ------------------------------------------------------------------------------------

# worker_down_missed_beats is the worker rule's, set per worker label (alerting_config.py), not per queue.
_SETTINGS_FIELDS = tuple(
    f.name
    for f in fields(RuleConfig)
    if f.name in IncidentSettings.model_fields and f.name != "worker_down_missed_beats"
)
# Rule settings that are per-queue options of the queue library.
QUEUE_FIELDS = {"backlog_threshold": QueueSettings.model_fields["backlog_threshold"]}
_EXTRA_FIELDS: dict[str, Any] = {
    "no_workers_pending_minutes": Annotated[float, Field(ge=0, le=1440)],
    "enabled": bool,
}


def threshold_adapter(name: str) -> TypeAdapter[Any]:
    """A validator of one rule setting with the bounds declared on IncidentSettings or QueueSettings."""
    if name in _EXTRA_FIELDS:
        return TypeAdapter(_EXTRA_FIELDS[name])
    info = IncidentSettings.model_fields.get(name) or QUEUE_FIELDS[name]
    annotated: Any = Annotated
    return TypeAdapter(annotated[(info.annotation, *info.metadata)])


def threshold_bounds(name: str) -> str:
    """The declared bounds of one rule setting as text, e.g. "> 0 and <= 1" (empty when unbounded)."""
    if name in _EXTRA_FIELDS:
        metadata = list(getattr(_EXTRA_FIELDS[name], "__metadata__", ()))
    else:
        info = IncidentSettings.model_fields.get(name) or QUEUE_FIELDS[name]
        metadata = list(info.metadata)
    parts: list[str] = []
    for item in metadata:
        for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:,}" if isinstance(value, int) else f"{sign} {value:g}")
        for sub in getattr(item, "metadata", ()):
            for attr, sign in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(sub, attr, None)
                if value is not None:
                    parts.append(f"{sign} {value:g}")
    return " and ".join(parts)


class RuleBook:
    """Rule thresholds per queue and per worker: the defaults, exact-name overrides (from the environment),
    then glob overrides and worker-label overrides (from the alerting configuration), first match wins."""

    def __init__(
        self,
        defaults: RuleConfig,
        overrides: Mapping[str, RuleConfig] | None = None,
        *,
        globs: Sequence[tuple[str, RuleConfig]] = (),
        workers: Sequence[tuple[Mapping[str, str], RuleConfig]] = (),
    ) -> None:
        self.defaults = defaults
        self.overrides = dict(overrides or {})
        self.globs = list(globs)
        self.workers = list(workers)

    def for_queue(self, queue: str) -> RuleConfig:
        """The thresholds of one queue: its exact-name override, else the first matching glob."""
        exact = self.overrides.get(queue)
        if exact is not None:
            return exact
        for glob, config in self.globs:
            if fnmatch.fnmatchcase(queue, glob):
                return config
        return self.defaults

    def for_worker(self, labels: Mapping[str, str]) -> RuleConfig | None:
        """The first worker override whose labels the worker carries, or None (the defaults apply)."""
        for wanted, config in self.workers:
            if all(labels.get(key) == value for key, value in wanted.items()):
                return config
        return None

    def window_minutes(self) -> int:
        """Minutes of history every queue's rules together need."""
        configs = [*self.overrides.values(), *(config for _, config in self.globs)]
        return max([self.defaults.window_minutes(), *(c.window_minutes() for c in configs)])

    @classmethod
    def from_settings(cls, settings: IncidentSettings, queues: QueueSettings) -> RuleBook:
        """Build from the settings (WORKERMON_INCIDENT_RULES was validated when they were read)."""
        defaults = RuleConfig(
            backlog_threshold=queues.backlog_threshold,
            **{name: getattr(settings, name) for name in _SETTINGS_FIELDS},
        )
        per_queue: dict[str, dict[str, Any]] = {
            queue: {"backlog_threshold": threshold}
            for queue, threshold in queues.queue_backlog_thresholds.items()
        }
        for queue, values in settings.rule_overrides.items():
            per_queue.setdefault(queue, {}).update(values)
        return cls(defaults, {queue: replace(defaults, **values) for queue, values in per_queue.items()})


def parse_overrides(text: str) -> dict[str, dict[str, Any]]:
    """{"queue": {"key": value}} validated key by key against the settings' own bounds."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid configuration: {RULES_ENV}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration: {RULES_ENV}: must be an object of queue names")
    allowed = sorted((*_SETTINGS_FIELDS, *QUEUE_FIELDS, *_EXTRA_FIELDS))
    parsed: dict[str, dict[str, Any]] = {}
    for queue, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(
                f"invalid configuration: {RULES_ENV}: {queue}: must be an object of rule settings"
            )
        parsed[queue] = {}
        for key, value in values.items():
            if key not in allowed:
                raise ConfigError(
                    f"invalid configuration: {RULES_ENV}: {queue}.{key}: unknown key "
                    f"(one of {', '.join(allowed)})"
                )
            try:
                parsed[queue][key] = threshold_adapter(key).validate_python(
                    value, strict=isinstance(value, str)
                )
            except ValidationError as exc:
                message = exc.errors()[0]["msg"]
                raise ConfigError(
                    f"invalid configuration: {RULES_ENV}: {queue}.{key}: {message} (got {value!r})"
                ) from None
    return parsed


def windows_from(points: Sequence[Point], queue: str) -> QueueWindow:
    """A QueueWindow from points in any order."""
    return QueueWindow(queue, tuple(sorted(points, key=lambda p: p.minute)))
