"""Request and response shapes of /v1/deployments."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from fusion.task_types import TaskType


class DeployedTask(BaseModel):
    name: str
    type: TaskType
    classes: int | None = None
    answered_by: str = Field(description="'fused', or the source model the task fell back to (no-regression rule).")


class DeploymentOut(BaseModel):
    name: str
    version: int
    latest: bool = Field(description="The version the unversioned routes serve.")
    job_id: uuid.UUID
    strategy: str
    tasks: list[DeployedTask]
    input_columns: dict[str, list[str]] = Field(description="Model input -> the record columns feeding it.")
    size_bytes: int
    infer_url: str
    predict_url: str | None = Field(description="Records in, predictions out; set on the newest version only.")
    created_at: datetime


class DeploymentList(BaseModel):
    items: list[DeploymentOut]


class BatchingChange(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"max_batch_size": 256, "max_batch_wait_ms": 2.0}]}
    )

    max_batch_size: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Rows per ONNX Runtime call; null: the service's setting."
    )
    max_batch_wait_ms: float | None = Field(
        default=None, ge=0, le=1000, description="Longest wait for other requests; 0: no batching; null: the setting."
    )


class DeploymentBatching(BaseModel):
    name: str
    version: int
    max_batch_size: int | None = Field(description="This deployment's own setting; null: the service's.")
    max_batch_wait_ms: float | None
    effective_max_batch_size: int
    effective_max_batch_wait_ms: float
    requests: int = Field(description="Inference requests this API process has run for the deployment's model.")
    runs: int = Field(description="ONNX Runtime calls they took: fewer than requests when batching merged them.")
