"""Fusion jobs record their training pace: rows per second and the time left, for progress at scale.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fusion_jobs") as table:
        table.add_column(sa.Column("rows_per_second", sa.Double(), nullable=True))
        table.add_column(sa.Column("eta_seconds", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fusion_jobs") as table:
        table.drop_column("eta_seconds")
        table.drop_column("rows_per_second")
