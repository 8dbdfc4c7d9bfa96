"""Fusion job rows. The worker writes progress here; there is no Celery result backend."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Enum, ForeignKey, Index, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.core.database import Base, TenantOwned
from service.models.models import UploadedModel


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


# Which source models a job reads: lets DELETE /v1/models refuse while an active job needs the model.
job_sources = Table(
    "fusion_job_sources",
    Base.metadata,
    Column("job_id", ForeignKey("fusion_jobs.id", ondelete="CASCADE"), primary_key=True),
    Column("model_id", ForeignKey("source_models.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class FusionJob(TenantOwned, Base):
    __tablename__ = "fusion_jobs"
    __table_args__ = (Index(None, "tenant_id", "status"), UniqueConstraint("tenant_id", "idempotency_key"))

    name: Mapped[str] = mapped_column(String(64))
    """The deployment name of the fused model; re-runs under one name deploy versions 1, 2, ..."""
    status: Mapped[JobStatus] = mapped_column(
        Enum(JobStatus, native_enum=False, length=16, values_callable=lambda kind: [s.value for s in kind]),
        default=JobStatus.QUEUED,
    )
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("datasets.id"))
    validation_dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))
    test_dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"))

    stage: Mapped[str | None] = mapped_column(String(255))
    progress: Mapped[float] = mapped_column(default=0.0)
    """0 to 1: the fraction of training steps done (1 on success)."""
    epoch: Mapped[int] = mapped_column(default=0)
    max_epochs: Mapped[int]
    metrics: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """One entry per finished epoch: epoch, train_loss, validation metric per task."""
    error: Mapped[str | None] = mapped_column(Text)
    deployed_version: Mapped[int | None]
    """The version under `name` that serves this job's fused model, once it succeeded."""
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    """The client's Idempotency-Key of the request that created the job: a retry finds this job."""
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    """Deliveries that started running the job: above 1 after a worker was lost and the job resumed."""
    enqueued_at: Mapped[datetime | None]
    """When the job's queue message was last sent: a job queued long after that has its message sent again."""
    heartbeat_at: Mapped[datetime | None]
    """Written about once a second by the worker running the job; a stale one means the worker is gone."""
    resumed_from_epoch: Mapped[int | None]
    """The last epoch checkpoint a later attempt started from, when one did."""
    rows_per_second: Mapped[float | None]
    """Training rows per second so far in the running attempt."""
    eta_seconds: Mapped[float | None]
    """Training time left at that pace, were every epoch to run (early stopping only shortens it)."""
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    sources: Mapped[list[UploadedModel]] = relationship(secondary=job_sources, lazy="selectin")

    @property
    def active(self) -> bool:
        """Queued or running: it still needs its source models and data."""
        return not self.status.finished
