"""Datasets by reference: a dataset is an upload (stored file) or a reference (files read in place under
the data root), with the URI, and each referenced file's size and mtime as registered.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as table:
        table.add_column(sa.Column("source_kind", sa.String(length=16), server_default="upload", nullable=False))
        table.add_column(sa.Column("uri", sa.Text(), nullable=True))
        table.add_column(sa.Column("files", sa.JSON(), nullable=True))
        table.alter_column("upload_sha256", existing_type=sa.String(length=64), nullable=True)
        table.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("datasets") as table:
        table.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
        table.alter_column("upload_sha256", existing_type=sa.String(length=64), nullable=False)
        table.drop_column("files")
        table.drop_column("uri")
        table.drop_column("source_kind")
