"""The API's resources as the client sees them.

Written from the API's JSON rather than imported from the server's schemas, so that the client needs
neither the server's dependencies nor its version: fields a newer server adds are ignored.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskType = Literal["binary", "regression", "multiclass"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskInfo(_Answer):
    name: str
    type: TaskType
    classes: int | None = None


class ModelInput(_Answer):
    name: str
    kind: Literal["categorical", "dense"]
    dtype: str
    width: int
    cardinality: int | None = None
    rank: int


class Signature(_Answer):
    inputs: list[ModelInput]
    output_name: str
    output_width: int
    output_is_probability: bool
    opset: int
    producer: str


class Component(_Answer):
    name: str
    role: str
    parameters: int
    parallel: bool
    ops: dict[str, int]
    children: list[Component] = []
    trees: int | None = None


class Decomposition(_Answer):
    parameter_count: int
    body_components: int
    components: list[Component]
    tree: str


class SourceModel(_Answer):
    id: uuid.UUID
    name: str
    task: TaskInfo
    filename: str
    sha256: str
    size_bytes: int
    signature: Signature
    decomposition: Decomposition
    created_at: datetime


class Column(_Answer):
    name: str
    dtype: str
    missing: int
    min: float | None
    max: float | None
    integer_valued: bool
    values: list[float] | None = None


class Dataset(_Answer):
    id: uuid.UUID
    name: str
    source_kind: str = "upload"
    source_format: str
    rows: int
    columns: list[Column]
    uri: str | None = None
    files: list[dict[str, Any]] | None = None
    sha256: str | None
    upload_sha256: str | None
    size_bytes: int
    created_at: datetime


class EpochMetrics(_Answer):
    epoch: int
    train_loss: float
    validation: dict[str, float | None]


class Deployment(_Answer):
    name: str
    version: int
    infer_url: str


class DeployedTask(_Answer):
    name: str
    type: TaskType
    classes: int | None = None
    answered_by: str = Field(description="'fused', or the source model the task fell back to.")


class DeployedModel(_Answer):
    """One version of a name under which a fused model is served."""

    name: str
    version: int
    latest: bool
    job_id: uuid.UUID
    strategy: str
    tasks: list[DeployedTask]
    input_columns: dict[str, list[str]]
    size_bytes: int
    infer_url: str
    predict_url: str | None
    created_at: datetime


class DeploymentBatching(_Answer):
    """A deployment's dynamic batching: its own settings (None: the service's), what applies, and how
    many requests and ONNX Runtime calls the answering API process has run for it."""

    name: str
    version: int
    max_batch_size: int | None
    max_batch_wait_ms: float | None
    effective_max_batch_size: int
    effective_max_batch_wait_ms: float
    requests: int
    runs: int


class Job(_Answer):
    id: uuid.UUID
    name: str
    status: JobStatus
    stage: str | None
    progress: float = Field(description="Percent of training done.")
    epoch: int
    max_epochs: int
    rows_per_second: float | None = None
    eta_seconds: float | None = None
    metrics: list[EpochMetrics]
    error: str | None
    report: dict[str, Any] | None
    deployment: Deployment | None
    cancel_requested: bool
    attempts: int
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class JobTaskSpec(_Request):
    name: str
    type: TaskType = "binary"
    label: str | None = None
    classes: int | None = None
    models: list[uuid.UUID | dict[str, Any]] = Field(
        min_length=1, description="Model ids, or {id, input_columns} objects."
    )


class Hyperparameters(_Request):
    """The server's defaults, for the reader: only the fields a caller sets are sent, so that the server's
    own defaults apply to the rest (tests/service/test_client.py keeps these equal to the live API's)."""

    d_model: int = 16
    heads: int = 2
    levels: int = 3
    tower_hidden: int = 16
    learning_rate: float = 1e-3
    batch_size: int = 1024
    max_epochs: int = 30
    patience: int = 2
    seed: int = 0
    finetune_learning_rate_scale: float = 0.1


class JobSpec(_Request):
    """The body of POST /v1/fusion-jobs. The server checks it in full and names every problem."""

    name: str
    tasks: list[JobTaskSpec] = Field(min_length=1)
    dataset_id: uuid.UUID
    validation_dataset_id: uuid.UUID | None = None
    validation_fraction: float | None = None
    test_dataset_id: uuid.UUID | None = None
    strategy: Literal["frozen", "adaptive", "finetune"] = "frozen"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    baselines: list[str] = Field(default_factory=list)


class ServerEvent(_Answer):
    """One server-sent event: its type, its data (decoded from JSON when it is JSON) and its id."""

    event: str = "message"
    data: Any = None
    id: str | None = None


class ServerMetadata(_Answer):
    name: str
    version: str
    extensions: list[str]


class TensorMetadata(_Answer):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(_Answer):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferenceInput(_Request):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceOutput(_Answer):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResult(_Answer):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferenceOutput]

    def output(self, name: str) -> InferenceOutput:
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(f"no output '{name}' in the answer; it has {[output.name for output in self.outputs]}")


class Prediction(_Answer):
    model_name: str
    model_version: str
    predictions: list[dict[str, float | list[float]]]
