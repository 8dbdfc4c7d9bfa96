"""Source model rows. The ONNX file itself lives in the artifact store under its sha256."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.core.database import Base, TenantOwned


class UploadedModel(TenantOwned, Base):
    __tablename__ = "source_models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    name: Mapped[str] = mapped_column(String(128))
    task_name: Mapped[str] = mapped_column(String(64))
    task_type: Mapped[str] = mapped_column(String(16))
    classes: Mapped[int | None]
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    """The canonical, self-contained model that intake produced (weights embedded), not the raw upload."""
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[dict[str, Any]] = mapped_column(JSON)
    """fusion.intake's ModelSignature as JSON: what the model reads and outputs."""
    decomposition: Mapped[dict[str, Any]] = mapped_column(JSON)

    jobs: Mapped[list[Any]] = relationship("FusionJob", secondary="fusion_job_sources", viewonly=True)
    """The fusion jobs that read this model. Named by string (service/jobs/models.py maps them), so that the
    jobs domain builds on this one and not the other way round."""
