"""Fused model and deployment rows. A fused model is one exported ONNX file; a deployment serves it
under a name and version."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.core.database import Base, TenantOwned


class FusedModel(TenantOwned, Base):
    __tablename__ = "fused_models"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fusion_jobs.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    strategy: Mapped[str] = mapped_column(String(16))
    tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """The export's fusebox.tasks metadata: name, type, classes per task (one output each)."""
    input_columns: Mapped[dict[str, list[str]]] = mapped_column(JSON)
    """Model input -> the data columns feeding it, for /v1/predict."""
    answered_by: Mapped[dict[str, str]] = mapped_column(JSON)


class Deployment(TenantOwned, Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)

    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    fused_model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("fused_models.id"))

    max_batch_size: Mapped[int | None]
    """Rows gathered into one ONNX Runtime call for this deployment; None: the service's setting."""
    max_batch_wait_ms: Mapped[float | None]
    """The longest a request waits for others to batch with; None: the service's setting."""

    fused_model: Mapped[FusedModel] = relationship(lazy="joined")
