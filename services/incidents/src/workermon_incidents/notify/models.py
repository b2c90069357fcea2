"""The notification delivery log: one row per (transition, channel), one row per attempt.

`notification_deliveries` is both the outbox and the guarantee: its row is inserted (ON CONFLICT DO
NOTHING on the unique (transition_seq, channel)) before anything is sent, and only the process whose
insert created the row enqueues it, so a transition reaches a channel at most once, across restarts
and replicas. The row also carries the incident as it stood at the transition (`event`, JSON), so
sending needs nothing but the row.

Times are timestamptz on PostgreSQL and naive UTC on SQLite (which sorts and compares correctly); the
store converts on the way in and out. The tables share IncidentBase's metadata, so the incident
service's Alembic environment (`migrate.metadata()`) knows them; revision 0002_notifications creates them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ..models import IncidentBase, IncidentId


class DeliveryStatus(StrEnum):
    """Where a delivery stands.

    QUEUED: waiting for its (next) attempt. SENDING: an attempt is under way. DELIVERED: the receiver
    took it (2xx, or the SMTP server accepted it). FAILED: refused in a way retrying cannot fix (a 4xx,
    a permanent SMTP error, a template that does not render). GAVE_UP: every allowed attempt failed.
    UNKNOWN: an attempt was interrupted (a crash while SENDING): it may or may not have arrived, and is
    never sent again, because a notification arriving twice is worse than one that must be looked up.
    GROUPED: a FIRED notification waiting in another delivery's group (its leader): it is sent in the
    leader's message and takes the leader's final status.
    """

    QUEUED = "QUEUED"
    SENDING = "SENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"
    GAVE_UP = "GAVE_UP"
    UNKNOWN = "UNKNOWN"
    GROUPED = "GROUPED"

    @property
    def final(self) -> bool:
        """True once nothing more will happen to the delivery."""
        return self not in (DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.GROUPED)


class AttemptOutcome(StrEnum):
    """How one attempt ended."""

    DELIVERED = "DELIVERED"
    RETRY = "RETRY"
    FAILED = "FAILED"
    GAVE_UP = "GAVE_UP"
    UNKNOWN = "UNKNOWN"


class DeliveryRecord(IncidentBase):
    """One transition's notification to one channel."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("transition_seq", "channel", name="uq_notification_deliveries_seq_channel"),
        Index("ix_notification_deliveries_incident_id", "incident_id", "id"),
        Index("ix_notification_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_group", "group_key", "status"),
        Index("ix_notification_deliveries_leader", "group_leader_id"),
    )

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(BigInteger)
    transition_seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64))
    channel_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The incident at the transition (notify.NotifyEvent as JSON): what the message is rendered from.
    event: Mapped[str] = mapped_column(Text)
    # A QUEUED delivery is not attempted before this (the retry backoff).
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # FIRED deliveries that group (route and channel): those arriving while a group's leader waits join it.
    group_key: Mapped[str | None] = mapped_column(String(200))
    # A member's leader: the delivery whose message carries it (NULL for leaders and ungrouped ones).
    group_leader_id: Mapped[int | None] = mapped_column(BigInteger)


class AttemptRecord(IncidentBase):
    """One attempt at a delivery, whatever its outcome."""

    __tablename__ = "notification_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_notification_attempts_delivery_attempt"),
    )

    id: Mapped[int] = mapped_column(IncidentId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        IncidentId,
        ForeignKey(
            "notification_deliveries.id",
            name="fk_notification_attempts_delivery_id",
            ondelete="CASCADE",
        ),
    )
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str] = mapped_column(String(16))
    # The HTTP status, or the SMTP reply code; NULL when no answer came (timeout, refused connection).
    status_code: Mapped[int | None] = mapped_column(Integer)
    # The start of the answer (HTTP body, SMTP reply text), for the operator.
    reply: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


NOTIFY_METADATA = IncidentBase.metadata
deliveries_table = cast(Table, DeliveryRecord.__table__)
attempts_table = cast(Table, AttemptRecord.__table__)
