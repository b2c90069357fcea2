"""The incident tables: `incidents` (one row per occurrence) and `incident_events` (its timeline).

Table names start with `incident`, so the service can share a database with the collector and the
monitor; its migrations keep their own version table (`incidents_alembic_version`).

Deduplication lives in the database, not in any process: a partial unique index on `fingerprint`
over the open statuses admits at most one open incident per (type, queue or worker), whatever the
number of replicas evaluating at once, while resolved incidents of the same fingerprint pile up
freely. Both SQLite and PostgreSQL support partial indexes.

`incident_events` is append-only; its increasing id is the position WatchIncidents resumes after.
It has no foreign key: a pending incident whose condition clears is deleted, its events stay.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Open statuses, as stored; the partial index's predicate spells them out in SQL.
OPEN_STATUSES = ("PENDING", "ACTIVE", "ACKNOWLEDGED")
OPEN_PREDICATE = "status IN ('PENDING', 'ACTIVE', 'ACKNOWLEDGED')"

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a bigint.
IncidentId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL, naive UTC on SQLite; always aware UTC in Python."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        # SQLite keeps text; naive UTC text sorts and compares correctly, offsets would not.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment = cast(datetime, value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class IncidentBase(DeclarativeBase):
    """Declarative base of the incident tables."""

    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})


class IncidentRecord(IncidentBase):
    """One incident as stored (engine.Incident is its immutable view)."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index(
            "uq_incidents_open_fingerprint",
            "fingerprint",
            unique=True,
            sqlite_where=text(OPEN_PREDICATE),
            postgresql_where=text(OPEN_PREDICATE),
        ),
        Index("ix_incidents_status_id", "status", "id"),
        Index("ix_incidents_queue_id", "queue", "id"),
        Index("ix_incidents_type_id", "type", "id"),
        Index("ix_incidents_fingerprint_id", "fingerprint", "id"),
        # Replay finds the holds released within its window by their notice time (replay.py).
        Index("ix_incidents_last_notice_time", "last_notice_time"),
    )

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    recommended_action: Mapped[str] = mapped_column(Text)
    affected_jobs: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    # JSON object of strings.
    labels: Mapped[str] = mapped_column(Text)
    pending_time: Mapped[datetime] = mapped_column(UtcDateTime)
    start_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_seen_time: Mapped[datetime] = mapped_column(UtcDateTime)
    # Since when the condition has been clear while open; resolution waits for the quiet period.
    clear_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledge_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolve_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the last FIRED or REMINDER transition was emitted (reminders count from it).
    last_notice_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolve_note: Mapped[str | None] = mapped_column(Text)
    resolved_automatically: Mapped[bool] = mapped_column(Boolean)
    notifications_sent: Mapped[int] = mapped_column(Integer)
    # Optimistic concurrency: every update names the version it read, so two replicas never both win.
    version: Mapped[int] = mapped_column(Integer)
    # JSON list of notification decisions (incident.Decision), one per notifiable transition.
    notify_decisions: Mapped[str] = mapped_column(Text, server_default="[]")
    # The FIRED or REMINDER event a silence held back: notified (with its id as the delivery key) once
    # no silence matches and the incident is still ACTIVE.
    held_event_id: Mapped[int | None] = mapped_column(BigInteger)
    # JSON list of the escalation steps taken (incident.Escalation): each is taken once per incident.
    escalations: Mapped[str] = mapped_column(Text, server_default="[]")


class IncidentEventRecord(IncidentBase):
    """One timeline entry; `incident` is the incident's state right after it, as JSON."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_incident_id_id", "incident_id", "id"),)

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    time: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    incident: Mapped[str] = mapped_column(Text)


class SilenceRecord(IncidentBase):
    """A silence: matchers and a time range; expiring early moves end_time to the moment it expired."""

    __tablename__ = "incident_silences"
    __table_args__ = (Index("ix_incident_silences_end_time", "end_time"),)

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    # The incident type name; empty matches every type.
    incident_type: Mapped[str] = mapped_column(String(32))
    queue_glob: Mapped[str] = mapped_column(Text)
    worker_id: Mapped[str] = mapped_column(Text)
    # JSON object of strings; every pair must be among the incident's labels.
    labels: Mapped[str] = mapped_column(Text)
    start_time: Mapped[datetime] = mapped_column(UtcDateTime)
    end_time: Mapped[datetime] = mapped_column(UtcDateTime)
    author: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)
    expired_by: Mapped[str | None] = mapped_column(Text)


class MaintenanceWindowRecord(IncidentBase):
    """A weekly maintenance window: matchers, weekdays and a time of day range in a time zone."""

    __tablename__ = "incident_maintenance_windows"

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    incident_type: Mapped[str] = mapped_column(String(32))
    queue_glob: Mapped[str] = mapped_column(Text)
    worker_id: Mapped[str] = mapped_column(Text)
    labels: Mapped[str] = mapped_column(Text)
    # "MON,TUE,...", in the window's time zone.
    weekdays: Mapped[str] = mapped_column(String(32))
    # Minutes after local midnight; start < end.
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)


class AlertingConfigRevision(IncidentBase):
    """One revision of the alerting configuration; the highest is in force.

    `document` is the whole configuration as JSON (see alerting_config.py), secrets included: access to
    this table is access to the channels' secrets, as access to the environment was.
    """

    __tablename__ = "alerting_config_revisions"

    revision: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=False)
    document: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditOutboxRecord(IncidentBase):
    """An audit entry of an operator's change, written in the change's transaction and deleted once the
    audit log has it: a process that dies between the two leaves it here for the outbox sweep."""

    __tablename__ = "incident_audit_outbox"

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    # A serialized CreateAuditLogRequest; its request_id makes sending it twice write one entry.
    request: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = mapped_column(UtcDateTime)


incidents = cast(Table, IncidentRecord.__table__)
maintenance_windows = cast(Table, MaintenanceWindowRecord.__table__)
silences = cast(Table, SilenceRecord.__table__)
incident_events = cast(Table, IncidentEventRecord.__table__)
alerting_config_revisions = cast(Table, AlertingConfigRevision.__table__)
audit_outbox = cast(Table, AuditOutboxRecord.__table__)
