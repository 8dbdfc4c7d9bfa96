"""Tenants and API keys; idempotency keys of fusion jobs; per-deployment batching overrides.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_tenant_id"), "api_keys", ["tenant_id"])

    with op.batch_alter_table("fusion_jobs") as table:
        table.add_column(sa.Column("idempotency_key", sa.String(length=128), nullable=True))
        table.create_unique_constraint(
            op.f("uq_fusion_jobs_tenant_id_idempotency_key"), ["tenant_id", "idempotency_key"]
        )
    with op.batch_alter_table("deployments") as table:
        table.add_column(sa.Column("max_batch_size", sa.Integer(), nullable=True))
        table.add_column(sa.Column("max_batch_wait_ms", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployments") as table:
        table.drop_column("max_batch_wait_ms")
        table.drop_column("max_batch_size")
    with op.batch_alter_table("fusion_jobs") as table:
        table.drop_constraint(op.f("uq_fusion_jobs_tenant_id_idempotency_key"), type_="unique")
        table.drop_column("idempotency_key")
    op.drop_index(op.f("ix_api_keys_tenant_id"), table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("tenants")
