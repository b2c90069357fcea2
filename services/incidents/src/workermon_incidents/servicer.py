"""IncidentService over gRPC: listing, timelines, acknowledge and resolve (audited), evaluate, watch."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf import struct_pb2
from sqlalchemy.exc import DBAPIError

from workermon.incidents.v1 import incident_service_pb2 as pb
from workermon.incidents.v1 import incident_service_pb2_grpc as pb_grpc
from workermon.monitor.v1 import monitor_service_pb2 as mon_pb
from workermon.monitor.v1 import monitor_service_pb2_grpc as mon_grpc
from workermon_core import context, validation
from workermon_core.audit_client import append_audit_log
from workermon_core.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from workermon_core.pagination import decode_token, encode_token, page_size
from workermon_core.peer import Peer

from . import alerting_config, alerting_store, silences, windows
from .alerting_store import AlertingConfigs
from .audited import AuditHook
from .engine import IncidentEngine
from .incident import Incident, IncidentStatus
from .messages import (
    event_message,
    incident_message,
    kind_value,
    silence_message,
    status_name,
    type_name,
    window_message,
)
from .models import OPEN_STATUSES
from .notify.events import NotifyEvent
from .notify.models import AttemptOutcome
from .notify.payloads import sample_event
from .notify.tasks import Notifier
from .rules import IncidentType
from .watch import IncidentFeed

log = structlog.get_logger("workermon.incidents")

T = TypeVar("T")

DEFAULT_PAGE = 50
MAX_PAGE = 200


def _database_down(exc: DBAPIError) -> Unavailable:
    return Unavailable(
        f"the incident database is unavailable: {type(exc.orig).__name__}", reason="DATABASE_UNAVAILABLE"
    )


class IncidentServicer(pb_grpc.IncidentServiceServicer):
    """The RPCs; state changes go through the engine."""

    def __init__(
        self,
        engine: IncidentEngine,
        feed: IncidentFeed,
        monitor: Peer[mon_grpc.MonitorServiceStub],
        *,
        configs: AlertingConfigs | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.engine = engine
        self.feed = feed
        self.monitor = monitor
        self.configs = configs
        self.notifier = notifier

    async def ListIncidents(
        self, request: pb.ListIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListIncidentsResponse:
        """Incidents newest first, filtered, one page at a time."""
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        validation.optional_queue_name(request.queue, "queue")
        validation.enum_value(request.status, pb.IncidentStatus.DESCRIPTOR, "status")
        validation.enum_value(request.type, pb.IncidentType.DESCRIPTOR, "type")
        status = status_name(request.status)
        statuses: tuple[str, ...] = (status,) if status else (OPEN_STATUSES if request.open_only else ())
        kind = type_name(request.type)
        filters: tuple[object, ...] = (statuses, kind, request.queue)
        cursor = decode_token(request.page_token, filters)
        before = int(cursor) if cursor else None
        try:
            rows = await self.engine.store.list_incidents(
                statuses=statuses, type=kind, queue=request.queue or None, before_id=before, limit=size + 1
            )
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.ListIncidentsResponse(incidents=[incident_message(i) for i in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_token(str(rows[size - 1].id), filters)
        return response

    async def GetIncident(
        self, request: pb.GetIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetIncidentResponse:
        """One incident and its timeline."""
        try:
            incident = await self.engine._existing(request.incident_id)
            timeline = await self.engine.store.timeline(incident.id)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.GetIncidentResponse(
            incident=incident_message(incident), timeline=[event_message(e) for e in timeline]
        )

    async def AcknowledgeIncident(
        self, request: pb.AcknowledgeIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgeIncidentResponse:
        """ACTIVE -> ACKNOWLEDGED, then written to the audit log (undone if it cannot be)."""
        action = mon_pb.AUDIT_ACTION_INCIDENT_ACKNOWLEDGE
        actor = context_subject()
        audit = self._incident_audit(action, request.note)
        async with self._refusals_audited(action, request.incident_id, {"note": request.note}):
            validation.reason(request.note, "note")
            try:
                incident = await self.engine.acknowledge(request.incident_id, actor, request.note, audit)
            except DBAPIError as exc:
                raise _database_down(exc) from None
        return pb.AcknowledgeIncidentResponse(incident=incident_message(incident))

    async def ResolveIncident(
        self, request: pb.ResolveIncidentRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveIncidentResponse:
        """Open -> RESOLVED by hand with a note, then written to the audit log (undone if it cannot be)."""
        action = mon_pb.AUDIT_ACTION_INCIDENT_RESOLVE
        actor = context_subject()
        audit = self._incident_audit(action, request.note)
        async with self._refusals_audited(
            action, request.incident_id, {"note": request.note}, settled=IncidentStatus.RESOLVED
        ):
            validation.reason(request.note, "note")
            try:
                incident = await self.engine.resolve(request.incident_id, actor, request.note, audit)
            except DBAPIError as exc:
                raise _database_down(exc) from None
        return pb.ResolveIncidentResponse(incident=incident_message(incident))

    @contextlib.asynccontextmanager
    async def _refusals_audited(
        self,
        action: mon_pb.AuditAction.ValueType,
        incident_id: int,
        parameters: dict[str, str],
        *,
        settled: IncidentStatus | None = None,
    ) -> AsyncIterator[None]:
        """Record a request refused as invalid (no note, a resolved incident, no such incident) as a
        REFUSED entry, as MonitorService records its own; the refusal is raised whatever happens to it.

        An incident already in the `settled` status the request asks for is no attempt worth recording
        (two people resolving at once; PagerDuty's webhook echoing a resolution sent from here).
        """
        try:
            yield
        except (InvalidArgument, FailedPrecondition, NotFound) as refusal:
            if settled is not None and refusal.metadata.get("status") == settled.value:
                raise
            details = {"error": refusal.message, "reason": refusal.reason}
            if isinstance(refusal, InvalidArgument):
                details["field"] = refusal.field
            try:
                await self._write_audit(
                    self._audit_entry(
                        action,
                        "incident",
                        str(incident_id),
                        parameters,
                        details,
                        outcome=mon_pb.AUDIT_OUTCOME_REFUSED,
                    )
                )
            except Unavailable as exc:
                log.warning("refusal_not_audited", action=action, incident=incident_id, error=exc.message)
            raise

    def _incident_audit(self, action: mon_pb.AuditAction.ValueType, note: str) -> AuditHook[Incident]:
        """How the engine audits an acknowledge or resolve (the hook gets the incident before)."""
        return self._hook(
            lambda before: self._audit_entry(
                action,
                "incident",
                str(before.id),
                {"note": note},
                {"fingerprint": before.fingerprint, "status_before": before.status.value},
                queue=before.queue or "",
            )
        )

    def _hook(self, entry: Callable[[T], mon_pb.AuditLog]) -> AuditHook[T]:
        """An audit hook writing `entry(subject)`, with the change's time and a request id of its own."""

        def request(subject: T, at: datetime) -> bytes:
            built = entry(subject)
            built.result.update({"changed_at": at.isoformat()})
            return mon_pb.CreateAuditLogRequest(
                audit_log=built, request_id=str(uuid.uuid4())
            ).SerializeToString()

        return AuditHook(request, self.send_audit)

    async def send_audit(self, request: bytes) -> None:
        """Write a kept CreateAuditLogRequest (once, by its request id); UNAVAILABLE when it cannot be."""
        parsed = mon_pb.CreateAuditLogRequest.FromString(request)
        await self._write_audit(parsed.audit_log, request_id=parsed.request_id)

    async def _write_audit(
        self, entry: mon_pb.AuditLog, consequence: str = "; nothing was changed", request_id: str = ""
    ) -> None:
        """Write the entry (with the service's admin token); UNAVAILABLE, then `consequence`, if it cannot."""
        await append_audit_log(self.monitor.stub, entry, consequence=consequence, request_id=request_id)

    def _audit_entry(
        self,
        action: mon_pb.AuditAction.ValueType,
        entity_type: str,
        entity_id: str,
        parameters: dict[str, str],
        result: dict[str, Any],
        *,
        queue: str = "",
        outcome: mon_pb.AuditOutcome.ValueType = mon_pb.AUDIT_OUTCOME_SUCCEEDED,
    ) -> mon_pb.AuditLog:
        """The entry for the caller (the token's subject and role) as the audit log takes it."""
        who = context.principal.get()
        entry = mon_pb.AuditLog(
            actor=who.subject if who else "system",
            role=who.role if who else "system",
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            queue=queue,
            outcome=outcome,
            request_id=context.request_id.get() or "",
        )
        entry.parameters.update({k: validation.bounded_text(v) for k, v in parameters.items()})
        details = struct_pb2.Struct()
        details.update(result)
        entry.result.CopyFrom(details)
        return entry

    # --- silences -----------------------------------------------------------------------------------

    async def ListSilences(
        self, request: pb.ListSilencesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSilencesResponse:
        """Silences newest first, by state, one page at a time."""
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        validation.enum_value(request.state, pb.SilenceState.DESCRIPTOR, "state")
        state = (
            silences.SilenceState(pb.SilenceState.Name(request.state).removeprefix("SILENCE_STATE_"))
            if request.state
            else None
        )
        filters: tuple[object, ...] = (state,)
        cursor = decode_token(request.page_token, filters)
        now = self.engine.now()
        try:
            async with self.engine.store.engine.connect() as conn:
                rows = await silences.page(conn, state, now, int(cursor) if cursor else None, size + 1)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.ListSilencesResponse(silences=[silence_message(s, now) for s in rows[:size]])
        if len(rows) > size:
            response.next_page_token = encode_token(str(rows[size - 1].id), filters)
        return response

    async def CreateSilence(
        self, request: pb.CreateSilenceRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateSilenceResponse:
        """A new silence by the caller, audited under its id (removed if the entry cannot be written)."""
        silence = _new_silence(request.silence, self.engine.now(), context_subject())

        audit: AuditHook[silences.Silence] = self._hook(
            lambda created: self._audit_entry(
                mon_pb.AUDIT_ACTION_SILENCE_CREATE,
                "silence",
                str(created.id),
                _silence_parameters(created),
                {"state": created.state(self.engine.now()).value},
            )
        )
        try:
            created = await self.engine.create_silence(silence, audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.CreateSilenceResponse(silence=silence_message(created, self.engine.now()))

    async def ExpireSilence(
        self, request: pb.ExpireSilenceRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExpireSilenceResponse:
        """End a silence now, audited; what it held back is notified if still firing."""

        audit: AuditHook[tuple[silences.Silence, silences.Silence]] = self._hook(
            lambda change: self._audit_entry(
                mon_pb.AUDIT_ACTION_SILENCE_EXPIRE,
                "silence",
                str(change[0].id),
                _silence_parameters(change[0]),
                {"state_before": change[0].state(self.engine.now()).value},
            )
        )
        try:
            expired = await self.engine.expire_silence(request.silence_id, context_subject(), audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.ExpireSilenceResponse(silence=silence_message(expired, self.engine.now()))

    # --- maintenance windows ------------------------------------------------------------------------

    async def ListMaintenanceWindows(
        self, request: pb.ListMaintenanceWindowsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMaintenanceWindowsResponse:
        """Maintenance windows newest first, one page at a time."""
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        filters: tuple[object, ...] = ("windows",)
        cursor = decode_token(request.page_token, filters)
        now = self.engine.now()
        try:
            async with self.engine.store.engine.connect() as conn:
                rows = await windows.page(conn, int(cursor) if cursor else None, size + 1)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.ListMaintenanceWindowsResponse(
            maintenance_windows=[window_message(w, now) for w in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_token(str(rows[size - 1].id), filters)
        return response

    async def CreateMaintenanceWindow(
        self, request: pb.CreateMaintenanceWindowRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateMaintenanceWindowResponse:
        """A new window by the caller, audited under its id (removed again if the entry cannot be written)."""
        window = _new_window(request.maintenance_window, self.engine.now(), context_subject())

        audit: AuditHook[windows.Window] = self._hook(
            lambda created: self._audit_entry(
                mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_CREATE,
                "maint_window",
                str(created.id),
                _window_parameters(created),
                {"open": str(created.is_open(self.engine.now())).lower()},
            )
        )
        try:
            created = await self.engine.create_window(window, audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.CreateMaintenanceWindowResponse(
            maintenance_window=window_message(created, self.engine.now())
        )

    async def DeleteMaintenanceWindow(
        self, request: pb.DeleteMaintenanceWindowRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteMaintenanceWindowResponse:
        """Delete a window, audited (restored if the entry cannot be written); what it held back is notified
        if still firing."""

        audit: AuditHook[windows.Window] = self._hook(
            lambda window: self._audit_entry(
                mon_pb.AUDIT_ACTION_MAINTENANCE_WINDOW_DELETE,
                "maint_window",
                str(window.id),
                _window_parameters(window),
                {"open": str(window.is_open(self.engine.now())).lower()},
            )
        )
        try:
            await self.engine.delete_window(request.window_id, audit)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.DeleteMaintenanceWindowResponse()

    # --- alerting configuration ---------------------------------------------------------------------

    def _configs(self) -> AlertingConfigs:
        if self.configs is None:
            raise FailedPrecondition("the alerting configuration is not available in this process")
        return self.configs

    async def GetAlertingConfig(
        self, request: pb.GetAlertingConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAlertingConfigResponse:
        """One revision (0: the one in force), secrets replaced by hints."""
        try:
            revision = await self._configs().get(request.revision)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.GetAlertingConfigResponse(config=revision_message(revision))

    async def UpdateAlertingConfig(
        self, request: pb.UpdateAlertingConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpdateAlertingConfigResponse:
        """Store the next revision (ABORTED when expected_revision is stale), audited, applied at once."""
        comment = validation.text(request.config.comment, "config.comment", validation.MAX_COMMENT)
        document = alerting_config.document_from(request.config)

        def entry(change: tuple[alerting_store.Revision | None, alerting_store.Revision]) -> mon_pb.AuditLog:
            before, after = change
            old = alerting_config.summary(before.document if before else None)
            new = alerting_config.summary(after.document)
            # Each part before and after (masked: the summary holds no secret), parameters and result alike.
            parts = {f"before.{k}": v for k, v in old.items()} | {f"after.{k}": v for k, v in new.items()}
            return self._audit_entry(
                mon_pb.AUDIT_ACTION_ALERTING_CONFIG_UPDATE,
                "alerting_config",
                str(after.revision),
                {"expected_revision": str(request.expected_revision), "comment": comment, **parts},
                {
                    "revision_before": str(before.revision if before else 0),
                    "revision": str(after.revision),
                    **{k: validation.bounded_text(v) for k, v in parts.items()},
                },
            )

        try:
            revision = await self._configs().update(
                document,
                expected_revision=request.expected_revision,
                author=context_subject(),
                comment=comment,
                validate_only=request.validate_only,
                audit=self._hook(entry),
            )
        except DBAPIError as exc:
            raise _database_down(exc) from None
        return pb.UpdateAlertingConfigResponse(config=revision_message(revision))

    async def ListAlertingConfigRevisions(
        self, request: pb.ListAlertingConfigRevisionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAlertingConfigRevisionsResponse:
        """Revisions newest first, one page at a time, secrets replaced by hints."""
        size = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        filters: tuple[object, ...] = ("alerting_config_revisions",)
        cursor = decode_token(request.page_token, filters)
        try:
            before = int(cursor) if cursor else None
        except ValueError:
            raise InvalidArgument("page_token", "is not a token this RPC returned") from None
        try:
            rows = await self._configs().page(before, size + 1)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.ListAlertingConfigRevisionsResponse(
            revisions=[revision_message(r) for r in rows[:size]]
        )
        if len(rows) > size:
            response.next_page_token = encode_token(str(rows[size - 1].revision), filters)
        return response

    async def TestNotificationChannel(
        self, request: pb.TestNotificationChannelRequest, context: grpc.aio.ServicerContext
    ) -> pb.TestNotificationChannelResponse:
        """Send one test message through a stored channel, or unsaved settings for it; audited."""
        validation.text(request.channel, "channel", 64, required=True, control=False)
        try:
            current = await self._configs().current()
        except DBAPIError as exc:
            raise _database_down(exc) from None
        stored = next(
            (c for c in current.document.get("channels", []) if c.get("name") == request.channel), None
        )
        if request.HasField("settings"):
            item = alerting_config.channel_from(request.settings)
            if item["name"] and item["name"] != request.channel:
                raise InvalidArgument("settings.name", "must be empty or the tested channel's name")
            item["name"] = request.channel
            if stored is not None and stored.get("type") == item.get("type"):
                alerting_config.fill_secrets(item, stored)
            alerting_config.require_header_values({"channels": [item]}, "settings")
        elif stored is not None:
            item = dict(stored)
        else:
            raise NotFound(f"channel {request.channel!r} is not configured", reason="CHANNEL_NOT_FOUND")
        channel = alerting_config.parse_channel_field(item, "settings")
        if self.notifier is None:
            raise FailedPrecondition("notifications are not available in this process")
        began = time.monotonic()
        try:
            result = await self.notifier.send_once(channel, channel_test_event(self.engine.now()))
            delivered, code = result.outcome is AttemptOutcome.DELIVERED, result.status_code or 0
            error, reply = result.error or "", result.reply or ""
        except Exception as exc:
            # A host name no resolver takes, a TLS failure: the test's answer, not the RPC's failure.
            delivered, code, error, reply = False, 0, f"{type(exc).__name__}: {exc}", ""
        duration_ms = round((time.monotonic() - began) * 1000)
        secrets = alerting_config.secrets_of(item)
        error, reply = _scrub(error, secrets), _scrub(reply, secrets)
        await self._write_audit(
            self._audit_entry(
                mon_pb.AUDIT_ACTION_NOTIFICATION_CHANNEL_TEST,
                "notify_channel",
                request.channel,
                {
                    "channel": request.channel,
                    "type": channel.type.value,
                    "target": channel.target,
                    "unsaved": str(request.HasField("settings")).lower(),
                },
                {"delivered": delivered, "status_code": code, "error": validation.bounded_text(error)},
            ),
            consequence="; the test message was sent",
        )
        return pb.TestNotificationChannelResponse(
            delivered=delivered, status_code=code, error=error, reply=reply, duration_ms=duration_ms
        )

    async def Evaluate(
        self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateResponse:
        """Run every rule now."""
        validation.queue_names(request.queues, "queues")
        minute = (
            validation.timestamp(request.minute_time, "minute_time", earliest=validation.EPOCH)
            if request.HasField("minute_time")
            else None
        )
        if minute is not None and minute > self.engine.now():
            raise InvalidArgument("minute_time", "must not be in the future")
        try:
            result = await self.engine.evaluate(minute, list(request.queues) or None)
        except DBAPIError as exc:
            raise _database_down(exc) from None
        response = pb.EvaluateResponse(
            queues_evaluated=result.queues,
            workers_evaluated=result.workers,
            errors=result.errors,
            duration_ms=result.duration_ms,
            changes=[
                pb.IncidentChange(kind=kind_value(c.kind), incident=incident_message(c.incident))
                for c in result.changes
            ],
        )
        response.evaluate_time.FromDatetime(result.at)
        return response

    async def WatchIncidents(
        self, request: pb.WatchIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchIncidentsResponse]:
        """Changes after `after_event_id` (or from now), live."""
        if request.after_event_id < 0:
            raise InvalidArgument("after_event_id", "must not be negative")
        try:
            async for event in self.feed.watch(request.after_event_id):
                yield pb.WatchIncidentsResponse(
                    event=event_message(event), incident=incident_message(event.incident)
                )
        except DBAPIError as exc:
            raise _database_down(exc) from None
        except DomainError:
            raise


def _matchers(matchers: pb.SilenceMatchers, prefix: str) -> silences.Matchers:
    """Checked matchers; INVALID_ARGUMENT naming the first bad field under `prefix`."""
    validation.enum_value(matchers.type, pb.IncidentType.DESCRIPTOR, f"{prefix}.type")
    kind = type_name(matchers.type)
    return silences.Matchers(
        type=IncidentType(kind) if kind else None,
        queue_glob=matchers.queue_glob,
        worker_id=matchers.worker_id,
        labels=dict(matchers.labels),
    ).validate(prefix)


def _new_window(message: pb.MaintenanceWindow, now: datetime, author: str) -> windows.Window:
    """The window a CreateMaintenanceWindow request describes; INVALID_ARGUMENT naming the bad field."""
    prefix = "maintenance_window"
    matchers = _matchers(message.matchers, f"{prefix}.matchers")
    weekdays = windows.check_weekdays(list(message.weekdays), f"{prefix}.weekdays")
    start = windows.minute_of_day(message.start_time_of_day, f"{prefix}.start_time_of_day")
    end = windows.minute_of_day(message.end_time_of_day, f"{prefix}.end_time_of_day")
    if end <= start:
        raise InvalidArgument(
            f"{prefix}.end_time_of_day", "must be after start_time_of_day (split a window at midnight)"
        )
    zone = windows.check_time_zone(message.time_zone, f"{prefix}.time_zone")
    comment = silences.check_comment(message.comment, f"{prefix}.comment")
    return windows.Window(0, matchers, weekdays, start, end, zone, author, comment, now)


def _window_parameters(window: windows.Window) -> dict[str, str]:
    return {
        **_matcher_parameters(window.matchers),
        "weekdays": ",".join(window.weekdays),
        "hours": f"{windows.time_text(window.start_minute)}-{windows.time_text(window.end_minute)}",
        "time_zone": window.time_zone,
        "comment": window.comment,
    }


def _matcher_parameters(m: silences.Matchers) -> dict[str, str]:
    return {
        "type": m.type.value if m.type else "",
        "queue_glob": m.queue_glob,
        "worker_id": m.worker_id,
        "labels": ",".join(f"{k}={v}" for k, v in sorted(m.labels.items())),
    }


def _new_silence(message: pb.Silence, now: datetime, author: str) -> silences.Silence:
    """The silence a CreateSilence request describes; INVALID_ARGUMENT naming the first bad field."""
    checked = _matchers(message.matchers, "silence.matchers")
    start = (
        validation.timestamp(message.start_time, "silence.start_time", earliest=validation.EPOCH)
        if message.HasField("start_time")
        else now
    )
    if not message.HasField("end_time"):
        raise InvalidArgument("silence.end_time", "is required")
    end = validation.timestamp(message.end_time, "silence.end_time", earliest=validation.EPOCH)
    silences.check_times(start, end, now, "silence")
    comment = silences.check_comment(message.comment, "silence.comment")
    return silences.Silence(0, checked, start, end, author, comment, now)


def _silence_parameters(silence: silences.Silence) -> dict[str, str]:
    return {
        **_matcher_parameters(silence.matchers),
        "start_time": silence.start_time.isoformat(),
        "end_time": silence.end_time.isoformat(),
        "comment": silence.comment,
    }


def revision_message(revision: alerting_store.Revision) -> pb.AlertingConfig:
    """A stored revision as an AlertingConfig, secrets replaced by hints."""
    message = alerting_config.document_message(revision.document)
    message.revision = revision.revision
    message.author = revision.author
    message.comment = revision.comment
    message.create_time.FromDatetime(revision.create_time)
    return message


def channel_test_event(now: datetime) -> NotifyEvent:
    """The made-up incident a channel test sends."""
    return replace(
        sample_event(),
        at=now,
        started_at=now,
        title="Test notification from Worker Monitor",
        description="A test message sent from the alerting configuration; nothing is wrong.",
        recommended_action="None: this only checks that the channel delivers.",
        labels={"test": "true"},
    )


def _scrub(text: str, secrets: list[str]) -> str:
    """`text` without any of the channel's secrets in it."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def context_subject() -> str:
    """The caller's subject."""
    return context.current_subject()
