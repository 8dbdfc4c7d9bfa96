"""Dataset rows: where the Parquet data is (one stored upload, or files referenced under the data root),
and per-column statistics that job validation reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, TenantOwned


class Dataset(TenantOwned, Base):
    __tablename__ = "datasets"

    name: Mapped[str] = mapped_column(String(255))
    source_kind: Mapped[str] = mapped_column(String(16), default="upload", server_default="upload")
    """'upload' (stored in the artifact store) or 'reference' (read in place under the data root)."""
    source_format: Mapped[str] = mapped_column(String(16))
    """'csv' or 'parquet': what was uploaded. The stored or referenced files are always Parquet."""
    uri: Mapped[str | None] = mapped_column(Text)
    """A reference's URI as given."""
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    """A reference's files as registered: path under the data root, size and mtime_ns; or, in a cloud
    store, url, size and version (ETag)."""
    upload_sha256: Mapped[str | None] = mapped_column(String(64))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    """Of the stored Parquet file; None for a reference."""
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    """Of the stored file, or of all referenced files together."""
    rows: Mapped[int] = mapped_column(BigInteger)
    columns: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """One entry per column: name, dtype, min, max, missing count, distinct values when few."""
