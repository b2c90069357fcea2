"""The alerting configuration as data: one row per revision, the highest in force.

Revision ID: 0004_alerting_config
Revises: 0003_silences
Create Date: 2026-12-06 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_alerting_config"
down_revision: str | None = "0003_silences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types as of this revision (spelled out so later model changes cannot alter what it creates).
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create alerting_config_revisions."""
    # The revision is chosen by the writer (the current one + 1), not generated: two replicas importing
    # the environment at once, or two admins saving at once, collide on the primary key.
    op.create_table(
        "alerting_config_revisions",
        sa.Column("revision", _ID, autoincrement=False, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("author", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("create_time", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("revision", name="pk_alerting_config_revisions"),
    )


def downgrade() -> None:
    """Drop the revisions."""
    op.drop_table("alerting_config_revisions")
