"""The writer's idempotency key of an audit entry, unique: a retried CreateAuditLog writes nothing new.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "monitor_audit_log"
_INDEX = "uq_monitor_audit_log_idempotency_key"


def upgrade() -> None:
    """Add idempotency_key (NULL for entries written without one) and its unique index."""
    op.add_column(_TABLE, sa.Column("idempotency_key", sa.String(length=64), nullable=True))
    op.create_index(_INDEX, _TABLE, ["idempotency_key"], unique=True)


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index(_INDEX, table_name=_TABLE)
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("idempotency_key")
