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


class DatasetUploadForm(BaseModel):
    """The multipart form of POST /v1/datasets (documentation only: the route streams the body itself)."""

    file: bytes = Field(
        description="A CSV file with a header row, or a Parquet file.", json_schema_extra={"format": "binary"}
    )
    name: str | None = Field(default=None, description="Default: the file name.")
    label_columns: str | None = Field(default=None, description="e.g. 'income,never_married'")


class ColumnOut(BaseModel):
    name: str
    dtype: str
    missing: int
    min: float | None
    max: float | None
    integer_valued: bool
    values: list[float] | None = Field(description="The distinct values, when there are at most 32.")


class DatasetOut(ApiModel):
    id: uuid.UUID
    name: str
    source_format: str
    rows: int
    columns: list[ColumnOut]
    sha256: str = Field(description="Of the stored Parquet file.")
    upload_sha256: str = Field(description="Of the file as uploaded.")
    size_bytes: int
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
