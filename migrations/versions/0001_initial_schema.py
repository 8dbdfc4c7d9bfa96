"""Initial schema: source models, datasets, fusion jobs, fused models, deployments; every row has a tenant.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 23:41:49.129845
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("source_format", sa.String(length=16), nullable=False),
        sa.Column("upload_sha256", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
    )
    op.create_index(op.f("ix_datasets_sha256"), "datasets", ["sha256"])
    op.create_index(op.f("ix_datasets_tenant_id"), "datasets", ["tenant_id"])

    op.create_table(
        "source_models",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("task_name", sa.String(length=64), nullable=False),
        sa.Column("task_type", sa.String(length=16), nullable=False),
        sa.Column("classes", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("decomposition", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_models")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_source_models_tenant_id_name")),
    )
    op.create_index(op.f("ix_source_models_sha256"), "source_models", ["sha256"])
    op.create_index(op.f("ix_source_models_tenant_id"), "source_models", ["tenant_id"])

    op.create_table(
        "fusion_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued", "running", "succeeded", "failed", "cancelled", name="jobstatus", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("validation_dataset_id", sa.Uuid(), nullable=True),
        sa.Column("test_dataset_id", sa.Uuid(), nullable=True),
        sa.Column("stage", sa.String(length=255), nullable=True),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("max_epochs", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("deployed_version", sa.Integer(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_fusion_jobs_dataset_id_datasets")),
        sa.ForeignKeyConstraint(
            ["test_dataset_id"], ["datasets.id"], name=op.f("fk_fusion_jobs_test_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["validation_dataset_id"], ["datasets.id"], name=op.f("fk_fusion_jobs_validation_dataset_id_datasets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fusion_jobs")),
    )
    op.create_index(op.f("ix_fusion_jobs_tenant_id"), "fusion_jobs", ["tenant_id"])
    op.create_index(op.f("ix_fusion_jobs_tenant_id_status"), "fusion_jobs", ["tenant_id", "status"])

    op.create_table(
        "fused_models",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("input_columns", sa.JSON(), nullable=False),
        sa.Column("answered_by", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["fusion_jobs.id"], name=op.f("fk_fused_models_job_id_fusion_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fused_models")),
    )
    op.create_index(op.f("ix_fused_models_job_id"), "fused_models", ["job_id"])
    op.create_index(op.f("ix_fused_models_tenant_id"), "fused_models", ["tenant_id"])

    op.create_table(
        "fusion_job_sources",
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["fusion_jobs.id"], name=op.f("fk_fusion_job_sources_job_id_fusion_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["source_models.id"],
            name=op.f("fk_fusion_job_sources_model_id_source_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "model_id", name=op.f("pk_fusion_job_sources")),
    )
    op.create_index(op.f("ix_fusion_job_sources_model_id"), "fusion_job_sources", ["model_id"])

    op.create_table(
        "deployments",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fused_model_id", sa.Uuid(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["fused_model_id"], ["fused_models.id"], name=op.f("fk_deployments_fused_model_id_fused_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("tenant_id", "name", "version", name=op.f("uq_deployments_tenant_id_name_version")),
    )
    op.create_index(op.f("ix_deployments_tenant_id"), "deployments", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deployments_tenant_id"), table_name="deployments")

    op.drop_table("deployments")
    op.drop_index(op.f("ix_fusion_job_sources_model_id"), table_name="fusion_job_sources")

    op.drop_table("fusion_job_sources")
    op.drop_index(op.f("ix_fused_models_tenant_id"), table_name="fused_models")
    op.drop_index(op.f("ix_fused_models_job_id"), table_name="fused_models")

    op.drop_table("fused_models")
    op.drop_index(op.f("ix_fusion_jobs_tenant_id_status"), table_name="fusion_jobs")
    op.drop_index(op.f("ix_fusion_jobs_tenant_id"), table_name="fusion_jobs")

    op.drop_table("fusion_jobs")
    op.drop_index(op.f("ix_source_models_tenant_id"), table_name="source_models")
    op.drop_index(op.f("ix_source_models_sha256"), table_name="source_models")

    op.drop_table("source_models")
    op.drop_index(op.f("ix_datasets_tenant_id"), table_name="datasets")
    op.drop_index(op.f("ix_datasets_sha256"), table_name="datasets")

    op.drop_table("datasets")
