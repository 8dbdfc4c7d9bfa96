"""Dataset rows: where the Parquet file is, and per-column statistics that job validation reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, TenantOwned


class Dataset(TenantOwned, Base):
    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(255))
    source_format: Mapped[str] = mapped_column(String(16))
    """'csv' or 'parquet': what was uploaded. The stored file is always Parquet."""
    upload_sha256: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """One entry per column: name, dtype, min, max, missing count, distinct values when few."""
