"""Request and response shapes of /v1/fusion-jobs."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from fusion.spec import FusionPlan, StrictModel, TaskSpec
from service.core.schemas import ApiModel

JobName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class SourceRef(StrictModel):
    id: uuid.UUID
    input_columns: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Model input -> the columns feeding it. Inputs of width 1 default to the column of their name.",
    )


def _id_or_ref(value: object) -> object:
    return {"id": value} if isinstance(value, str) else value


class JobTask(TaskSpec):
    models: list[Annotated[SourceRef, BeforeValidator(_id_or_ref)]] = Field(
        min_length=1, description="Source model ids (or {id, input_columns} objects) trained for this task."
    )


class JobCreate(FusionPlan):
    """A fusion job on stored models and datasets: the engine's FusionPlan (fusion/spec.py) and their ids."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "census",
                    "tasks": [
                        {"name": "income", "type": "binary", "models": ["<model id>", "<model id>"]},
                        {"name": "never_married", "type": "binary", "models": ["<model id>", "<model id>"]},
                    ],
                    "dataset_id": "<dataset id>",
                    "validation_dataset_id": "<dataset id>",
                    "strategy": "frozen",
                    "hyperparameters": {"max_epochs": 10, "batch_size": 1024},
                }
            ]
        },
    )

    name: JobName = Field(description="The fused model is deployed under this name, version 1, 2, ... per run.")
    tasks: list[JobTask] = Field(min_length=1)
    dataset_id: uuid.UUID = Field(description="Training rows, with one label column per task.")
    validation_dataset_id: uuid.UUID | None = None
    validation_fraction: float | None = Field(default=None, gt=0, lt=1, description="Or: carve validation rows out.")
    test_dataset_id: uuid.UUID | None = Field(default=None, description="Optional: the report adds test metrics.")

    @model_validator(mode="after")
    def _one_validation_source(self) -> JobCreate:
        if (self.validation_dataset_id is None) == (self.validation_fraction is None):
            raise ValueError("give either 'validation_dataset_id' or 'validation_fraction' (e.g. 0.1), not both")
        return self

    @model_validator(mode="after")
    def _held_out_rows_are_not_training_rows(self) -> JobCreate:
        for field in ("validation_dataset_id", "test_dataset_id"):
            if getattr(self, field) == self.dataset_id:
                raise ValueError(
                    f"'{field}' is the training dataset: scores on rows the model trained on say nothing of how it "
                    "does on new rows; give a dataset of other rows"
                    + (" or 'validation_fraction'" if field == "validation_dataset_id" else "")
                )
        return self


class EpochMetrics(BaseModel):
    epoch: int
    train_loss: float
    validation: dict[str, float | None] = Field(description="Each task's validation metric (AUC for binary tasks).")


class DeploymentRef(BaseModel):
    name: str
    version: int
    infer_url: str


class JobOut(ApiModel):
    id: uuid.UUID
    name: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None
    progress: float = Field(description="Percent of training done (100 once the job succeeded).")
    epoch: int
    rows_per_second: float | None = Field(description="Training rows per second so far in the running attempt.")
    eta_seconds: float | None = Field(
        description="Training time left at that pace were every epoch to run; early stopping only shortens it."
    )
    max_epochs: int
    metrics: list[EpochMetrics]
    error: str | None
    report: dict[str, Any] | None = Field(description="Per task: each source model, the fused model, baselines.")
    deployment: DeploymentRef | None
    cancel_requested: bool
    attempts: int = Field(description="Runs started: 2 or more after a worker was lost and the job was requeued.")
    resumed_from_epoch: int | None = Field(description="The epoch checkpoint the latest attempt resumed from.")
    heartbeat_at: datetime | None = Field(description="The latest sign of life from the worker running the job.")
    idempotency_key: str | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, row: Any) -> Any:
        if isinstance(row, dict):
            return row
        fields = {name: getattr(row, name) for name in cls.model_fields if name not in {"progress", "deployment"}}
        deployment = None
        if row.deployed_version is not None:
            url = f"/v2/models/{row.name}/versions/{row.deployed_version}/infer"
            deployment = DeploymentRef(name=row.name, version=row.deployed_version, infer_url=url)
        return {**fields, "progress": round(100 * row.progress, 1), "deployment": deployment}


class JobList(BaseModel):
    items: list[JobOut]
