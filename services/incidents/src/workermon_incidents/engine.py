"""The incident state machine: findings in, transitions out.

    (none) --firing--> PENDING --held for the pending period--> ACTIVE --operator--> ACKNOWLEDGED
       PENDING --clear--> (deleted silently)
       ACTIVE / ACKNOWLEDGED --clear for the quiet period--> RESOLVED (automatically)
       any open --admin--> RESOLVED (by hand, with a note)

One evaluation reads the data first (outside any transaction), then applies every finding in one
write transaction holding the incident write lock (see store.py): two replicas evaluating at once
take turns, and the second sees what the first did. The pending state lives in the database, so a
restart or another replica carries on where the last evaluation stopped. Transitions go to the
registered callbacks after the commit.

Missing data (a finding with `firing` None) never resolves anything: it holds every state as it is
and restarts an open incident's quiet period.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from workermon_core.errors import FailedPrecondition, InvalidArgument, NotFound

from . import audited, routing, rules, silences, windows
from .audited import AuditHook
from .incident import (
    SYSTEM_ACTOR,
    Decision,
    Escalation,
    EventKind,
    Incident,
    IncidentEvent,
    IncidentStatus,
    Outcome,
)
from .rules import Finding, QueueWindow, RuleBook, WorkerState
from .store import IncidentStore
from .transitions import Transition, TransitionCallback

log = structlog.get_logger("workermon.incidents")

Clock = Callable[[], float]
# The routes and channels a transition (incident, kind, event id) goes to (the notifier's routing),
# for the "notified" decision.
Router = Callable[[Incident, str, int], tuple[tuple[str, ...], tuple[str, ...]]]
# The configured notification routes (their escalation steps are the engine's to take).
RouteReader = Callable[[], Sequence[routing.Route]]
# Which of these queues are paused now (paused.PausedQueues.paused).
PausedReader = Callable[[Sequence[str]], Awaitable[set[str]]]
# The rules a paused queue mutes: its jobs wait on purpose, so neither the backlog nor the missing
# workers are news.
_PAUSE_MUTES = (rules.IncidentType.QUEUE_BACKLOG, rules.IncidentType.WORKER_DOWN)
NOTE_MAX = 2000
_NOTIFIED = {
    EventKind.FIRED,
    EventKind.RESOLVED,
    EventKind.ACKNOWLEDGED,
    EventKind.REMINDER,
    EventKind.ESCALATED,
}


@dataclass
class Reading:
    """What a data source saw: queue windows, the newest minute stored, workers, and what failed."""

    windows: dict[str, QueueWindow] = field(default_factory=dict)
    newest_minute: datetime | None = None
    # None when the workers could not be read (their rules are then skipped, not cleared).
    workers: list[WorkerState] | None = None
    errors: list[str] = field(default_factory=list)


class Source(Protocol):
    """Where the engine reads snapshots and workers (CollectorService and HeartbeatService over gRPC)."""

    async def read(
        self, end: datetime, minutes: int, queues: Sequence[str] | None, extra: Sequence[str]
    ) -> Reading:
        """Windows of `minutes` minutes ending before `end` for `queues` (None: every queue the
        collector covers, plus `extra`), the newest minute stored, and the workers."""
        ...


@dataclass(frozen=True)
class Change:
    """One transition an evaluation made."""

    kind: EventKind
    incident: Incident
    event_id: int
    at: datetime
    # False when a silence held the notification back: recorded, not emitted.
    notify: bool = True


@dataclass
class EvaluationResult:
    """What one evaluation saw and changed."""

    at: datetime
    queues: int = 0
    workers: int = 0
    changes: list[Change] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration_ms: float = 0.0


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings that are not per-queue rule thresholds."""

    beat_interval_seconds: float = 10.0
    worker_down_missed_beats: int = 4
    stats_stale_minutes: float = 5.0
    incident_quiet_minutes: float = 5.0
    notify_repeat_hours: float = 4.0


@dataclass(frozen=True)
class _Mutes:
    """What may hold a notification back at one moment: the silences in force and, while STATS_STALE
    fires, the blindness it causes (queue rules judge data that stopped coming)."""

    silences: list[silences.Silence]
    stale: Incident | None
    windows: list[windows.Window]
    paused: set[str]

    def decide(self, incident: Incident, event_id: int, kind: EventKind, now: datetime) -> Decision | None:
        """The SILENCED or INHIBITED decision for this transition, or None when it is to be notified."""
        silence = silences.first_match(self.silences, incident)
        if silence is not None:
            return Decision(
                event_id,
                kind,
                Outcome.SILENCED,
                now,
                silence_id=silence.id,
                detail=silence.comment,
                until=silence.end_time,
            )
        window = next((w for w in self.windows if w.is_open(now) and w.matchers.matches(incident)), None)
        if window is not None:
            return Decision(
                event_id, kind, Outcome.MAINTENANCE, now, window_id=window.id, detail=window.comment
            )
        queue_rule = incident.queue and incident.worker_id is None
        if queue_rule and incident.queue in self.paused and incident.type in _PAUSE_MUTES:
            return Decision(
                event_id, kind, Outcome.INHIBITED, now, inhibited_by=f"queue {incident.queue} paused"
            )
        if self.stale is not None and queue_rule and incident.type is not rules.IncidentType.STATS_STALE:
            return Decision(
                event_id, kind, Outcome.INHIBITED, now, inhibited_by=f"STATS_STALE incident #{self.stale.id}"
            )
        return None


def floor_minute(moment: datetime) -> datetime:
    """The start of the minute `moment` falls in."""
    return moment.replace(second=0, microsecond=0)


class IncidentEngine:
    """Evaluates the rules and owns every change to an incident."""

    def __init__(
        self,
        store: IncidentStore,
        source: Source,
        rulebook: RuleBook,
        config: EngineConfig,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.source = source
        self.rulebook = rulebook
        self.config = config
        self.clock = clock
        self._callbacks: list[TransitionCallback] = []
        self._listeners: list[Callable[[], None]] = []
        # The newest minute seen while the collector answered: STATS_STALE keeps ageing from it
        # when the collector itself is down.
        self._newest_seen: datetime | None = None
        self._evaluating = asyncio.Lock()
        self._route: Router = lambda incident, kind, seq: ((), ())
        self._routes: RouteReader = lambda: ()
        self._paused: PausedReader | None = None

    def now(self) -> datetime:
        """The engine's clock as an aware datetime."""
        return datetime.fromtimestamp(self.clock(), tz=UTC)

    def on_transition(self, callback: TransitionCallback) -> None:
        """Call `callback` with every committed FIRED, RESOLVED, ACKNOWLEDGED, REMINDER and ESCALATED
        transition."""
        self._callbacks.append(callback)

    def route_with(self, router: Router) -> None:
        """Name the routes and channels each transition goes to in "notified" decisions."""
        self._route = router

    def escalate_with(self, routes: RouteReader) -> None:
        """Take the escalation steps of the routes `routes()` returns (read at every evaluation)."""
        self._routes = routes

    def inhibit_paused_with(self, reader: PausedReader) -> None:
        """Mute the backlog and no-worker incidents of the queues `reader` says are paused."""
        self._paused = reader

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener` (synchronously) after every commit that added timeline entries."""
        self._listeners.append(listener)

    # --- evaluation -------------------------------------------------------------------------------------

    async def evaluate(
        self, minute: datetime | None = None, queues: Sequence[str] | None = None
    ) -> EvaluationResult:
        """Read the data, apply every rule, commit the transitions, then emit them.

        `minute`: the newest minute to consider (default: the last full one by the clock). `queues`:
        evaluate only these queues' rules; worker and staleness rules always run.
        """
        # One evaluation at a time per process: a timer tick and the collector's call may coincide.
        async with self._evaluating:
            return await self._evaluate(minute, queues)

    async def _evaluate(self, minute: datetime | None, queues: Sequence[str] | None) -> EvaluationResult:
        started = time.perf_counter()
        now = self.now()
        end = floor_minute(minute) + rules.MINUTE if minute is not None else floor_minute(now)
        result = EvaluationResult(at=now)
        open_now = await self._open_incidents()
        extra = sorted({i.queue for i in open_now.values() if i.queue and i.worker_id is None})
        reading = await self.source.read(end, self.rulebook.window_minutes(), queues, extra)
        result.errors.extend(reading.errors)
        thresholds = {fp: i.threshold for fp, i in open_now.items() if i.status.is_open}
        findings: list[Finding] = []
        for window in reading.windows.values():
            findings.extend(rules.queue_findings(window, self.rulebook.for_queue(window.queue), thresholds))
        result.queues = len(reading.windows)
        if reading.workers is not None:
            result.workers = len(reading.workers)
            findings.extend(self._worker_findings(reading.workers, now))
        if reading.newest_minute is not None:
            self._newest_seen = max(reading.newest_minute, self._newest_seen or reading.newest_minute)
        stale = rules.stats_stale(
            self._newest_seen,
            now,
            stale_minutes=self.config.stats_stale_minutes,
            quiet_minutes=self.config.incident_quiet_minutes,
        )
        if stale is not None:
            findings.append(stale)
        result.changes = await self.apply(findings, now)
        result.duration_ms = (time.perf_counter() - started) * 1000
        if result.changes:
            log.info(
                "incidents_evaluated",
                changes=[f"{c.kind.value}:{c.incident.fingerprint}" for c in result.changes],
                ms=round(result.duration_ms, 1),
            )
        return result

    async def evaluate_workers(self, workers: Sequence[WorkerState]) -> list[Change]:
        """Apply the worker rule to these workers only (a WatchWorkers transition)."""
        now = self.now()
        findings = self._worker_findings(workers, now)
        async with self._evaluating:
            return await self.apply(findings, now, reminders=False)

    def _worker_findings(self, workers: Sequence[WorkerState], now: datetime) -> list[Finding]:
        """The WORKER_DOWN rule for each worker, with the thresholds of the override its labels match."""
        findings: list[Finding] = []
        for worker in workers:
            override = self.rulebook.for_worker(worker.labels)
            if not (override or self.rulebook.defaults).enabled:
                continue
            missed = self.config.worker_down_missed_beats
            quiet = self.config.incident_quiet_minutes
            if override is not None:
                missed = override.worker_down_missed_beats or missed
                quiet = override.incident_quiet_minutes
            findings.append(
                rules.worker_down(
                    worker,
                    now,
                    beat_interval_seconds=self.config.beat_interval_seconds,
                    missed_beats=missed,
                    quiet_minutes=quiet,
                )
            )
        return findings

    def configure(self, rulebook: RuleBook, config: EngineConfig) -> None:
        """Apply another revision of the alerting configuration (the next evaluation uses it)."""
        self.rulebook = rulebook
        self.config = config

    async def _open_incidents(self) -> dict[str, Incident]:
        async with self.store.engine.connect() as conn:
            return await self.store.open_incidents(conn)

    async def apply(
        self, findings: Sequence[Finding], now: datetime, *, reminders: bool = True
    ) -> list[Change]:
        """Turn findings into transitions in one locked transaction; emit them after the commit."""
        changes: list[Change] = []
        released: list[Change] = []
        try:
            async with self.store.write() as conn:
                current = await self.store.open_incidents(conn)
                for finding in findings:
                    change = await self._apply_one(conn, finding, current.get(finding.fingerprint), now)
                    changes.extend(change)
                if reminders:
                    changes.extend(
                        await self._reminders(conn, current, {f.fingerprint for f in findings}, now)
                    )
                changes = await self._decide(conn, changes, now)
                released = await self._release(conn, now)
        except IntegrityError:
            # Only a writer outside the lock (an older replica?) can get here: the index kept the
            # incident single; the next evaluation sees it.
            log.warning("incident_insert_conflict")
            return []
        await self._after_commit([*changes, *released])
        return changes

    # --- silences ---------------------------------------------------------------------------------------

    async def _decide(self, conn: AsyncConnection, changes: list[Change], now: datetime) -> list[Change]:
        """Record whether each notifiable change is notified, silenced or inhibited, inside its write."""
        if not any(c.kind in _NOTIFIED for c in changes):
            return changes
        mutes = await self._mutes(conn, now, [c.incident for c in changes])
        decided: list[Change] = []
        for change in changes:
            if change.kind not in _NOTIFIED:
                decided.append(change)
                continue
            incident = await self.store.load(conn, change.incident.id) or change.incident
            decision = mutes.decide(incident, change.event_id, change.kind, now)
            if decision is None:
                routes, channels = self._route(incident, change.kind.value, change.event_id)
                decision = Decision(
                    change.event_id, change.kind, Outcome.NOTIFIED, now, channels, routes=routes
                )
                # A later notification supersedes one still held back.
                held = None
            elif change.kind in (EventKind.FIRED, EventKind.REMINDER):
                held = incident.held_event_id or change.event_id
            else:
                held = None
            updated = await self.store.update(
                conn, replace(incident, decisions=(*incident.decisions, decision), held_event_id=held)
            )
            decided.append(replace(change, incident=updated, notify=decision.outcome is Outcome.NOTIFIED))
        return decided

    async def _mutes(self, conn: AsyncConnection, now: datetime, changed: Sequence[Incident] = ()) -> _Mutes:
        in_force = await silences.active(conn, now)
        open_now = await self.store.open_incidents(conn)
        pausable = [
            i.queue
            for i in (*open_now.values(), *changed)
            if i.queue and i.worker_id is None and i.type in _PAUSE_MUTES
        ]
        paused = await self._paused(pausable) if self._paused is not None and pausable else set()
        stale = next(
            (
                i
                for i in open_now.values()
                if i.type is rules.IncidentType.STATS_STALE and i.status is not IncidentStatus.PENDING
            ),
            None,
        )
        return _Mutes(in_force, stale, await windows.all_windows(conn), paused)

    async def _release(self, conn: AsyncConnection, now: datetime) -> list[Change]:
        """Notifications held back whose silences ended: FIRED under the held event's id (its delivery
        key, so a second release by another replica creates nothing), if the incident is still ACTIVE."""
        held = await self.store.held(conn)
        if not held:
            return []
        mutes = await self._mutes(conn, now)
        released: list[Change] = []
        for incident in held:
            assert incident.held_event_id is not None
            if incident.status is IncidentStatus.ACTIVE and mutes.decide(incident, 0, EventKind.FIRED, now):
                continue
            if incident.status is not IncidentStatus.ACTIVE:
                # Acknowledged or pending again: nobody needs the late page.
                await self.store.update(conn, replace(incident, held_event_id=None))
                continue
            routes, channels = self._route(incident, EventKind.FIRED.value, incident.held_event_id)
            decision = Decision(
                incident.held_event_id,
                EventKind.FIRED,
                Outcome.NOTIFIED,
                now,
                channels,
                detail="held back until the silence, maintenance window or inhibition ended",
                routes=routes,
            )
            updated = await self.store.update(
                conn,
                replace(
                    incident,
                    decisions=(*incident.decisions, decision),
                    held_event_id=None,
                    last_notice_time=now,
                ),
            )
            released.append(Change(EventKind.FIRED, updated, incident.held_event_id, now))
        return released

    async def release_held(self) -> None:
        """Send the notifications held back by silences that no longer hold (after one is expired)."""
        now = self.now()
        async with self._evaluating:
            async with self.store.write() as conn:
                released = await self._release(conn, now)
            await self._after_commit(released)

    async def create_silence(
        self, silence: silences.Silence, audit: AuditHook[silences.Silence] | None = None
    ) -> silences.Silence:
        """Store a new silence with its audit entry (see audited.py); if the entry cannot be written, the
        silence goes again."""

        async def insert(conn: AsyncConnection) -> silences.Silence:
            return await silences.insert_silence(conn, silence)

        async def undo(conn: AsyncConnection, created: silences.Silence) -> None:
            await silences.delete(conn, created.id)

        return await audited.change(self.store, insert, audit, undo, self.now())

    async def create_window(
        self, window: windows.Window, audit: AuditHook[windows.Window] | None = None
    ) -> windows.Window:
        """Store a new maintenance window with its audit entry; if the entry cannot be written, it goes."""

        async def insert(conn: AsyncConnection) -> windows.Window:
            return await windows.insert_window(conn, window)

        async def undo(conn: AsyncConnection, created: windows.Window) -> None:
            await windows.remove(conn, created.id)

        return await audited.change(self.store, insert, audit, undo, self.now())

    async def delete_window(self, window_id: int, audit: AuditHook[windows.Window] | None = None) -> None:
        """Delete a maintenance window with its audit entry (the hook gets the window deleted; restored if
        the entry cannot be written), then send what it held back."""

        async def remove(conn: AsyncConnection) -> windows.Window:
            window = await windows.load(conn, window_id)
            await windows.remove(conn, window_id)
            return window

        async def undo(conn: AsyncConnection, window: windows.Window) -> None:
            await windows.insert_window(conn, window, keep_id=True)

        await audited.change(self.store, remove, audit, undo, self.now())
        await self.release_held()

    async def expire_silence(
        self,
        silence_id: int,
        actor: str,
        audit: AuditHook[tuple[silences.Silence, silences.Silence]] | None = None,
    ) -> silences.Silence:
        """End a silence now with its audit entry (the hook gets the silence before and after; restored
        if the entry cannot be written), then send what it held back. An ended one is returned as it is."""
        now = self.now()
        async with self.store.engine.connect() as conn:
            silence = await silences.load(conn, silence_id)
        if silence.state(now) is silences.SilenceState.EXPIRED:
            return silence

        async def expire(conn: AsyncConnection) -> tuple[silences.Silence, silences.Silence]:
            before = await silences.load(conn, silence_id)
            return before, await silences.expire(conn, before, actor, now)

        async def undo(conn: AsyncConnection, change: tuple[silences.Silence, silences.Silence]) -> None:
            await silences.restore(conn, change[0])

        _, expired = await audited.change(self.store, expire, audit, undo, now)
        await self.release_held()
        return expired

    async def _apply_one(
        self, conn: AsyncConnection, finding: Finding, open_incident: Incident | None, now: datetime
    ) -> list[Change]:
        store = self.store
        if open_incident is None:
            if not finding.firing:
                return []
            fires_now = finding.pending <= timedelta(0)
            incident = await store.insert(conn, self._new_incident(finding, now, fires_now))
            kind = EventKind.FIRED if fires_now else EventKind.PENDING
            event = await store.add_event(conn, incident, kind, now, message=finding.description)
            return [Change(kind, incident, event.id, now)]

        incident = open_incident
        if finding.firing is None:
            if incident.clear_since is None:
                return []
            # No data is not "clear": the quiet period starts again once data says so.
            await store.update(conn, replace(incident, clear_since=None))
            return []

        if incident.status is IncidentStatus.PENDING:
            if not finding.firing:
                await store.delete(conn, incident)
                event = await store.add_event(
                    conn, incident, EventKind.CLEARED, now, message="condition cleared"
                )
                return [Change(EventKind.CLEARED, incident, event.id, now)]
            refreshed = self._refreshed(incident, finding, now)
            if now - incident.pending_time >= finding.pending:
                fired = replace(refreshed, status=IncidentStatus.ACTIVE, start_time=now, last_notice_time=now)
                fired = await store.update(conn, fired)
                event = await store.add_event(conn, fired, EventKind.FIRED, now, message=finding.description)
                return [Change(EventKind.FIRED, fired, event.id, now)]
            await store.update(conn, refreshed)
            return []

        # ACTIVE or ACKNOWLEDGED
        if finding.firing:
            refreshed = replace(self._refreshed(incident, finding, now), clear_since=None)
            updated = await store.update(conn, refreshed)
            if (incident.severity, incident.title) != (updated.severity, updated.title):
                event = await store.add_event(
                    conn, updated, EventKind.UPDATED, now, message=finding.description
                )
                return [Change(EventKind.UPDATED, updated, event.id, now)]
            return []
        clear_since = incident.clear_since or now
        if now - clear_since >= finding.quiet:
            resolved = replace(
                incident,
                status=IncidentStatus.RESOLVED,
                resolve_time=now,
                resolved_by=SYSTEM_ACTOR,
                resolved_automatically=True,
                clear_since=clear_since,
            )
            resolved = await store.update(conn, resolved)
            minutes = finding.quiet.total_seconds() / 60
            event = await store.add_event(
                conn, resolved, EventKind.RESOLVED, now, message=f"condition clear for {minutes:g} min"
            )
            return [Change(EventKind.RESOLVED, resolved, event.id, now)]
        if incident.clear_since is None:
            await store.update(conn, replace(incident, clear_since=clear_since))
        return []

    async def _reminders(
        self, conn: AsyncConnection, current: dict[str, Incident], touched: set[str], now: datetime
    ) -> list[Change]:
        """Escalation steps now due and reminders now due, for every ACTIVE (unacknowledged) incident."""
        repeat = timedelta(hours=self.config.notify_repeat_hours)
        routes = tuple(self._routes())
        changes: list[Change] = []
        for fp, original in current.items():
            # Re-read what this transaction may have changed (resolved, refreshed) before deciding.
            incident = await self.store.load(conn, original.id) if fp in touched else original
            if incident is None or incident.status is not IncidentStatus.ACTIVE:
                continue
            if routes and incident.start_time is not None:
                escalated = await self._escalate(conn, incident, routes, now)
                changes.extend(escalated)
                if escalated:
                    incident = escalated[-1].incident
            if repeat <= timedelta(0):
                continue
            since = incident.last_notice_time or incident.start_time
            if since is None or now - since < repeat:
                continue
            reminded = await self.store.update(conn, replace(incident, last_notice_time=now))
            hours = (now - (incident.start_time or now)).total_seconds() / 3600
            event = await self.store.add_event(
                conn, reminded, EventKind.REMINDER, now, message=f"unacknowledged for {hours:.1f} h"
            )
            changes.append(Change(EventKind.REMINDER, reminded, event.id, now))
        return changes

    async def _escalate(
        self, conn: AsyncConnection, incident: Incident, routes: Sequence[routing.Route], now: datetime
    ) -> list[Change]:
        """Take the escalation steps due for an ACTIVE incident, each once: an ESCALATED entry each.

        The steps taken are kept on the incident, written in this locked transaction with the entry:
        a restart or another replica sees them and does not take them again.
        """
        assert incident.start_time is not None
        taken = routing.select(routes, incident)
        due = routing.due_steps(taken, incident.start_time, now, (e.key for e in incident.escalations))
        changes: list[Change] = []
        for route, step in due:
            channels = ", ".join(step.channels) or "no channel"
            message = f"unacknowledged for {step.after_minutes} min: escalated to {channels}"
            event = await self.store.add_event(conn, incident, EventKind.ESCALATED, now, message=message)
            step_taken = Escalation(route.name, step.after_minutes, tuple(step.channels), event.id)
            incident = await self.store.update(
                conn, replace(incident, escalations=(*incident.escalations, step_taken))
            )
            changes.append(Change(EventKind.ESCALATED, incident, event.id, now))
        return changes

    @staticmethod
    def _new_incident(finding: Finding, now: datetime, fires_now: bool) -> Incident:
        return Incident(
            id=0,
            fingerprint=finding.fingerprint,
            type=finding.type,
            severity=finding.severity,
            status=IncidentStatus.ACTIVE if fires_now else IncidentStatus.PENDING,
            queue=finding.queue,
            worker_id=finding.worker_id,
            title=finding.title,
            description=finding.description,
            recommended_action=finding.recommended_action,
            affected_jobs=finding.affected_jobs,
            value=finding.value,
            threshold=finding.threshold,
            labels=dict(finding.labels),
            pending_time=now,
            start_time=now if fires_now else None,
            last_seen_time=now,
            last_notice_time=now if fires_now else None,
        )

    @staticmethod
    def _refreshed(incident: Incident, finding: Finding, now: datetime) -> Incident:
        # The threshold an incident fired with stays (the slow rule judges against it while open).
        return replace(
            incident,
            severity=finding.severity,
            title=finding.title,
            description=finding.description,
            recommended_action=finding.recommended_action,
            affected_jobs=finding.affected_jobs,
            value=finding.value,
            labels=dict(finding.labels),
            last_seen_time=now,
        )

    # --- operator actions -------------------------------------------------------------------------------

    async def acknowledge(
        self,
        incident_id: int,
        actor: str,
        note: str = "",
        audit: AuditHook[Incident] | None = None,
    ) -> Incident:
        """ACTIVE -> ACKNOWLEDGED; already acknowledged is returned as it is.

        The change is committed with its audit entry in the outbox, then the entry is sent; if that
        fails, the change is undone (see `_audit_or_undo`) and nothing is notified.
        """
        if len(note) > NOTE_MAX:
            raise InvalidArgument("note", f"must be at most {NOTE_MAX} characters")
        incident = await self._existing(incident_id)
        if incident.status is IncidentStatus.ACKNOWLEDGED:
            return incident
        self._require(incident, (IncidentStatus.ACTIVE,), "acknowledged")
        # This replica's evaluations wait until the audit is settled: an undo never races them.
        async with self._evaluating:
            now = self.now()
            async with self.store.write() as conn:
                current = await self.store.load(conn, incident_id)
                if current is None:
                    raise NotFound(f"incident {incident_id} does not exist", reason="INCIDENT_NOT_FOUND")
                if current.status is IncidentStatus.ACKNOWLEDGED:
                    return current
                self._require(current, (IncidentStatus.ACTIVE,), "acknowledged")
                acked = await self.store.update(
                    conn,
                    replace(
                        current,
                        status=IncidentStatus.ACKNOWLEDGED,
                        acknowledge_time=now,
                        acknowledged_by=actor,
                    ),
                )
                event = await self.store.add_event(
                    conn, acked, EventKind.ACKNOWLEDGED, now, actor=actor, message=note
                )
                changes = await self._decide(
                    conn, [Change(EventKind.ACKNOWLEDGED, acked, event.id, now)], now
                )
                kept = await audited.keep(self.store, conn, audit, current, now)
            await self._audit_or_undo(kept, current, changes[0])
        await self._after_commit(changes)
        return changes[0].incident

    async def resolve(
        self,
        incident_id: int,
        actor: str,
        note: str,
        audit: AuditHook[Incident] | None = None,
    ) -> Incident:
        """Any open status -> RESOLVED by hand, with a note (required); audited like `acknowledge`."""
        if not note.strip():
            raise InvalidArgument("note", "is required: say why the incident is resolved")
        if len(note) > NOTE_MAX:
            raise InvalidArgument("note", f"must be at most {NOTE_MAX} characters")
        incident = await self._existing(incident_id)
        open_statuses = (IncidentStatus.PENDING, IncidentStatus.ACTIVE, IncidentStatus.ACKNOWLEDGED)
        self._require(incident, open_statuses, "resolved")
        async with self._evaluating:
            now = self.now()
            async with self.store.write() as conn:
                current = await self.store.load(conn, incident_id)
                if current is None:
                    raise NotFound(f"incident {incident_id} does not exist", reason="INCIDENT_NOT_FOUND")
                self._require(current, open_statuses, "resolved")
                resolved = await self.store.update(
                    conn,
                    replace(
                        current,
                        status=IncidentStatus.RESOLVED,
                        resolve_time=now,
                        resolved_by=actor,
                        resolve_note=note,
                        resolved_automatically=False,
                    ),
                )
                event = await self.store.add_event(
                    conn, resolved, EventKind.RESOLVED, now, actor=actor, message=note
                )
                changes = await self._decide(conn, [Change(EventKind.RESOLVED, resolved, event.id, now)], now)
                kept = await audited.keep(self.store, conn, audit, current, now)
            await self._audit_or_undo(kept, current, changes[0])
        await self._after_commit(changes)
        return changes[0].incident

    async def _audit_or_undo(self, kept: audited.Kept | None, before: Incident, change: Change) -> None:
        """Send the change's kept audit entry; if that fails, undo exactly this change (see `_undo`)."""

        async def undo(conn: AsyncConnection) -> None:
            await self._undo(conn, before, change)

        try:
            await audited.send_or_undo(self.store, kept, undo)
        except BaseException:
            self._notify_listeners()
            raise

    async def send_kept_audits(
        self, send: Callable[[bytes], Awaitable[None]], grace: timedelta = audited.OUTBOX_GRACE
    ) -> int:
        """The outbox sweep (audited.send_kept) on this engine's clock."""
        return await audited.send_kept(self.store, send, self.now(), grace)

    async def _undo(self, conn: AsyncConnection, before: Incident, change: Change) -> None:
        """Take back an operator's change, inside `conn`'s write: its timeline entry and decision go, the
        status fields return.

        Only what the change set is restored: a notification recorded meanwhile (record_notified)
        stays counted. A resolved incident is not reopened when another incident of its fingerprint
        opened meanwhile (the one-open-per-fingerprint rule); its entry still goes.
        """
        await self.store.delete_event(conn, change.event_id)
        latest = await self.store.load(conn, before.id)
        if latest is None:
            return
        restored = replace(
            latest,
            decisions=tuple(d for d in latest.decisions if d.event_id != change.event_id),
            held_event_id=latest.held_event_id if latest.held_event_id is not None else before.held_event_id,
        )
        reopening = before.status.is_open and not latest.status.is_open
        other = (await self.store.open_incidents(conn)).get(before.fingerprint) if reopening else None
        if latest.status is change.incident.status and (other is None or other.id == before.id):
            restored = replace(
                restored,
                status=before.status,
                acknowledge_time=before.acknowledge_time,
                acknowledged_by=before.acknowledged_by,
                resolve_time=before.resolve_time,
                resolved_by=before.resolved_by,
                resolve_note=before.resolve_note,
                resolved_automatically=before.resolved_automatically,
            )
        await self.store.update(conn, restored)
        log.warning(
            "incident_change_undone", incident=before.id, kind=change.kind.value, event_id=change.event_id
        )

    async def record_notified(self, incident_id: int, channel: str, message: str = "") -> IncidentEvent:
        """Record a delivered notification: a NOTIFIED timeline entry and notifications_sent + 1."""
        now = self.now()
        async with self.store.write() as conn:
            current = await self.store.load(conn, incident_id)
            if current is None:
                raise NotFound(f"incident {incident_id} does not exist", reason="INCIDENT_NOT_FOUND")
            counted = await self.store.update(
                conn, replace(current, notifications_sent=current.notifications_sent + 1)
            )
            event = await self.store.add_event(
                conn, counted, EventKind.NOTIFIED, now, actor=SYSTEM_ACTOR, message=message or channel
            )
        self._notify_listeners()
        return event

    async def _existing(self, incident_id: int) -> Incident:
        if incident_id <= 0:
            raise InvalidArgument("incident_id", "must be a positive incident id")
        incident = await self.store.get(incident_id)
        if incident is None:
            raise NotFound(f"incident {incident_id} does not exist", reason="INCIDENT_NOT_FOUND")
        return incident

    @staticmethod
    def _require(incident: Incident, allowed: Sequence[IncidentStatus], verb: str) -> None:
        if incident.status not in allowed:
            raise FailedPrecondition(
                f"incident {incident.id} is {incident.status.value} and cannot be {verb}",
                reason="INCIDENT_STATUS",
                metadata={"status": incident.status.value},
            )

    # --- emission ---------------------------------------------------------------------------------------

    async def _after_commit(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        self._notify_listeners()
        for change in changes:
            if change.kind not in _NOTIFIED or not change.notify:
                continue
            transition = Transition(change.incident, change.kind.value, change.event_id, change.at)
            for callback in list(self._callbacks):
                try:
                    await callback(transition)
                except Exception:
                    log.exception(
                        "transition_callback_failed", kind=transition.kind, incident=change.incident.id
                    )

    def _notify_listeners(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("commit_listener_failed")
