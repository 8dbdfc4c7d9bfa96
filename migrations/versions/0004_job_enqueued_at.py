"""Fusion jobs record when their queue message was last sent, so that a lost message is sent again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs queued before this revision get no time: the first sweep sends their message again, which
    # recovers any whose message was already lost and costs the others one ignored duplicate.
    with op.batch_alter_table("fusion_jobs") as table:
        table.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fusion_jobs") as table:
        table.drop_column("enqueued_at")
