"""The audit log table of MonitorService: one row per attempted action, whatever its outcome.

Every table name starts with `monitor_`, so the monitor can share a database (and a schema) with
the collector; its migrations keep their own version table (`monitor_alembic_version`) for the same
reason. Rows are only ever inserted, and deleted by retention pruning.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import BigInteger, DateTime, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class AuditAction(StrEnum):
    """What was attempted (stored as its name)."""

    QUEUE_PAUSE = "QUEUE_PAUSE"
    QUEUE_RESUME = "QUEUE_RESUME"
    QUEUE_DRAIN = "QUEUE_DRAIN"
    QUEUE_CLEAN = "QUEUE_CLEAN"
    QUEUE_RETRY_FAILED = "QUEUE_RETRY_FAILED"
    QUEUE_PROMOTE_DELAYED = "QUEUE_PROMOTE_DELAYED"
    JOB_ADD = "JOB_ADD"
    JOB_RETRY = "JOB_RETRY"
    JOB_PROMOTE = "JOB_PROMOTE"
    JOB_CANCEL = "JOB_CANCEL"
    WORKER_QUIET = "WORKER_QUIET"
    WORKER_RESUME = "WORKER_RESUME"
    WORKER_STOP = "WORKER_STOP"
    WORKER_COMMAND = "WORKER_COMMAND"
    WORKER_ONLINE = "WORKER_ONLINE"
    WORKER_OFFLINE = "WORKER_OFFLINE"
    INCIDENT_ACKNOWLEDGE = "INCIDENT_ACKNOWLEDGE"
    INCIDENT_RESOLVE = "INCIDENT_RESOLVE"
    LOGIN = "LOGIN"
    USER_ADD = "USER_ADD"
    USER_REMOVE = "USER_REMOVE"
    LOGOUT_ALL = "LOGOUT_ALL"
    JOB_CHILDREN_REMOVE = "JOB_CHILDREN_REMOVE"
    JOB_SCHEDULER_RUN = "JOB_SCHEDULER_RUN"
    JOB_SCHEDULER_REMOVE = "JOB_SCHEDULER_REMOVE"
    JOB_BULK_ACTION = "JOB_BULK_ACTION"
    QUEUE_OBLITERATE = "QUEUE_OBLITERATE"
    JOB_EXPORT = "JOB_EXPORT"
    DEDUPLICATION_RELEASE = "DEDUPLICATION_RELEASE"
    SILENCE_CREATE = "SILENCE_CREATE"
    SILENCE_EXPIRE = "SILENCE_EXPIRE"
    MAINTENANCE_WINDOW_CREATE = "MAINTENANCE_WINDOW_CREATE"
    MAINTENANCE_WINDOW_DELETE = "MAINTENANCE_WINDOW_DELETE"
    ALERTING_CONFIG_UPDATE = "ALERTING_CONFIG_UPDATE"
    NOTIFICATION_CHANNEL_TEST = "NOTIFICATION_CHANNEL_TEST"


class AuditOutcome(StrEnum):
    """How the attempt ended: done, failed while doing it, refused for the role, or refused as unsafe."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    DENIED = "DENIED"
    REFUSED = "REFUSED"
    # Written before an allowed action runs; completed once, to one of the outcomes above, after it.
    PENDING = "PENDING"


class AuditEntityType(StrEnum):
    """The kind of thing acted on."""

    QUEUE = "queue"
    JOB = "job"
    WORKER = "worker"
    INCIDENT = "incident"
    USER = "user"
    JOB_SCHEDULER = "job_scheduler"
    SILENCE = "silence"
    # The column holds 16 characters.
    MAINTENANCE_WINDOW = "maint_window"
    # A revision of the alerting configuration, and one of its notification channels (by name).
    ALERTING_CONFIG = "alerting_config"
    NOTIFY_CHANNEL = "notify_channel"
    # An attempt refused before it named anything more precise (see workermon_core.refusals).
    RPC = "rpc"


class AuditRole(StrEnum):
    """The actor's role; `system` is the service acting on its own (e.g. a worker going offline)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    WORKER = "worker"
    SYSTEM = "system"
    # A refused login: nobody was authenticated.
    NONE = "none"


# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid); PostgreSQL gets a bigint.
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditBase(DeclarativeBase):
    """Declarative base of the monitor's tables."""

    # A fixed primary key name, so migrations can refer to it on every backend.
    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})


class AuditRecord(AuditBase):
    """One audited attempt (audit.AuditEntry as stored).

    `time` is stored as timestamptz on PostgreSQL and naive UTC text on SQLite (which sorts and
    compares correctly); the store converts on the way in and out. Each index ends with `id`, the
    tie-break of the listing order, so a page (time desc, id desc) is read straight off an index.
    """

    __tablename__ = "monitor_audit_log"
    __table_args__ = (
        Index("ix_monitor_audit_log_time_id", "time", "id"),
        Index("ix_monitor_audit_log_actor_time_id", "actor", "time", "id"),
        Index("ix_monitor_audit_log_action_time_id", "action", "time", "id"),
        Index("ix_monitor_audit_log_entity_time_id", "entity_type", "entity_id", "time", "id"),
        Index("ix_monitor_audit_log_queue_time_id", "queue", "time", "id"),
        Index("uq_monitor_audit_log_idempotency_key", "idempotency_key", unique=True),
    )

    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(16))
    # For a job "queue/jobid": job ids are only unique within their queue.
    entity_id: Mapped[str] = mapped_column(Text)
    queue: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    result: Mapped[str] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(Text)
    # The writer's id of the write (CreateAuditLogRequest.request_id): a retried write finds its entry.
    idempotency_key: Mapped[str | None] = mapped_column(String(64))


audit_log = cast(Table, AuditRecord.__table__)
