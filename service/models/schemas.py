"""Request and response shapes of /v1/models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusion.task_types import TaskType
from service.core.schemas import ApiModel

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]
TaskName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]


class ModelMetadata(BaseModel):
    """The text fields of a model upload."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="Unique per tenant; names the model in fusion reports.")
    task: TaskName = Field(description="The task the model was trained for, e.g. 'income'.")
    task_type: TaskType = TaskType.BINARY
    classes: int | None = Field(default=None, ge=3, le=10_000, description="Number of classes (multiclass only).")

    @model_validator(mode="after")
    def _classes_match_type(self) -> ModelMetadata:
        if (self.task_type == "multiclass") != (self.classes is not None):
            raise ValueError("give 'classes' for a multiclass task, and only then")
        return self


class ModelUploadForm(ModelMetadata):
    """The multipart form of POST /v1/models (documentation only: the route streams the body itself)."""

    file: bytes = Field(description="The .onnx file.", json_schema_extra={"format": "binary"})
    weights: bytes | None = Field(
        default=None,
        description="The companion external-data file PyTorch's exporter writes beside the model (model.onnx.data).",
        json_schema_extra={"format": "binary"},
    )


class TaskOut(BaseModel):
    name: str
    type: TaskType
    classes: int | None = None


class InputOut(BaseModel):
    name: str
    kind: Literal["categorical", "dense"]
    dtype: str
    width: int
    cardinality: int | None = Field(description="Ids this categorical input accepts: 0 to cardinality - 1.")
    rank: int


class SignatureOut(BaseModel):
    inputs: list[InputOut]
    output_name: str
    output_width: int
    output_is_probability: bool
    opset: int
    producer: str


class ComponentOut(BaseModel):
    name: str
    role: str
    parameters: int
    parallel: bool
    ops: dict[str, int]
    outputs: list[dict[str, Any]]
    children: list[ComponentOut] = []
    trees: int | None = Field(default=None, description="Trees in a tree ensemble's stage group.")


class DecompositionOut(BaseModel):
    parameter_count: int
    body_components: int = Field(description="Innermost body components: what fusion can draw knowledge from.")
    components: list[ComponentOut]
    tree: str = Field(description="The component hierarchy as printable text.")


class ModelOut(ApiModel):
    id: uuid.UUID
    name: str
    task: TaskOut
    filename: str
    sha256: str
    size_bytes: int
    signature: SignatureOut
    decomposition: DecompositionOut
    created_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _task_from_row(cls, row: Any) -> Any:
        if isinstance(row, dict):
            return row
        fields = {name: getattr(row, name) for name in cls.model_fields if name != "task"}
        return {**fields, "task": TaskOut(name=row.task_name, type=row.task_type, classes=row.classes)}


class ModelList(BaseModel):
    items: list[ModelOut]
