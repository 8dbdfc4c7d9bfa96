"""Request and response shapes of /v1/datasets."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.core.schemas import ApiModel


class DatasetMetadata(BaseModel):
    """The text fields of a dataset upload."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=255, description="Default: the file name.")
    label_columns: list[str] = Field(
        default_factory=list,
        description="Comma-separated label columns, which may have missing values (empty cells, NaN).",
    )

    @field_validator("label_columns", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


class DatasetReference(DatasetMetadata):
    """POST /v1/datasets without a file: Parquet data read in place under the data root."""

    uri: str = Field(
        min_length=1,
        max_length=4096,
        description="A Parquet file, a folder of Parquet files, or a glob, relative to FUSEBOX_DATA_ROOT "
        "(or an absolute path or file:// URL inside it), e.g. 'census/train/*.parquet'.",
    )
    name: str | None = Field(default=None, max_length=255, description="Default: the URI.")


class DatasetUploadForm(BaseModel):
    """The multipart form of POST /v1/datasets (documentation only: the route streams the body itself)."""

    file: bytes = Field(
        description="A CSV file with a header row, or a Parquet file.", json_schema_extra={"format": "binary"}
    )
    name: str | None = Field(default=None, description="Default: the file name.")
    label_columns: str | None = Field(default=None, description="e.g. 'income,never_married'")


class DatasetReferenceForm(BaseModel):
    """The multipart form of a registration by reference (documentation only)."""

    uri: str = Field(description="A Parquet file, folder or glob under FUSEBOX_DATA_ROOT.")
    name: str | None = Field(default=None, description="Default: the URI.")
    label_columns: str | None = Field(default=None, description="e.g. 'income,never_married'")


class ColumnOut(BaseModel):
    name: str
    dtype: str
    missing: int
    min: float | None
    max: float | None
    integer_valued: bool
    values: list[float] | None = Field(description="The distinct values, when there are at most 32.")


class FileOut(BaseModel):
    """A local file (path, mtime_ns) or a cloud object (url, version)."""

    path: str | None = Field(default=None, description="Under the data root.")
    url: str | None = Field(default=None, description="A cloud object's URL.")
    size: int
    mtime_ns: int | None = Field(default=None, description="A local file's modification time.")
    version: str | None = Field(default=None, description="A cloud object's ETag (or modification time).")


class DatasetOut(ApiModel):
    id: uuid.UUID
    name: str
    source_kind: str = Field(description="'upload' (stored by the service) or 'reference' (read in place).")
    source_format: str
    rows: int
    columns: list[ColumnOut]
    uri: str | None = Field(description="A reference's URI as given.")
    files: list[FileOut] | None = Field(
        description="A reference's files, with their size and mtime (or ETag) as registered."
    )
    sha256: str | None = Field(description="Of the stored Parquet file (uploads).")
    upload_sha256: str | None = Field(description="Of the file as uploaded (uploads).")
    size_bytes: int = Field(description="Of the stored file, or of all referenced files.")
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
