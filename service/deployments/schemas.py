"""Request and response shapes of /v1/deployments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.core.schemas import ApiModel


class DeployedTask(BaseModel):
    name: str
    type: str
    classes: int | None = None
    answered_by: str = Field(description="'fused', or the source model the task fell back to (no-regression rule).")


class DeploymentOut(ApiModel):
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

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, row: Any) -> Any:
        if isinstance(row, dict):
            return row
        deployment, latest = row
        fused = deployment.fused_model
        tasks = [
            DeployedTask(
                name=task["name"],
                type=task.get("type", "binary"),
                classes=task.get("classes"),
                answered_by=fused.answered_by.get(task["name"], "fused"),
            )
            for task in fused.tasks
        ]
        return {
            "name": deployment.name,
            "version": deployment.version,
            "latest": latest,
            "job_id": fused.job_id,
            "strategy": fused.strategy,
            "tasks": tasks,
            "input_columns": fused.input_columns,
            "size_bytes": fused.size_bytes,
            "infer_url": f"/v2/models/{deployment.name}/versions/{deployment.version}/infer",
            "predict_url": f"/v1/predict/{deployment.name}" if latest else None,
            "created_at": deployment.created_at,
        }


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
