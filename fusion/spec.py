"""What a fusion job is: its tasks, strategy, hyper-parameters and baselines, each with its one default.

Torch-free, so that every side builds on it: the API's job schema (service/jobs/schemas.py) adds stored
model and dataset ids, the command line's spec file (`FuseSpec`) adds file paths, the worker validates a
stored job with the API's schema, and the engine's configurations are built from `Hyperparameters`
(`AKFConfig.from_hyperparameters`, `TrainConfig.from_hyperparameters`, `FusionSettings.from_plan`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusion.task_types import TaskType
from fusion.tasks import Task

BaselineKind = Literal["shared_bottom", "mmoe", "ple"]
TaskName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
ColumnName = Annotated[str, Field(min_length=1, max_length=256)]

SEED_LIMIT = 2**63 - 1
"""Seeds reach torch.manual_seed, which takes a signed 64-bit integer."""


class Strategy(StrEnum):
    """How the source models take part in training (fusion/akf/strategies.py)."""

    FROZEN = "frozen"
    ADAPTIVE = "adaptive"
    FINETUNE = "finetune"


class StrictModel(BaseModel):
    """Unknown fields are errors: a misspelt hyper-parameter must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class TaskSpec(StrictModel):
    name: TaskName
    type: TaskType = TaskType.BINARY
    label: ColumnName | None = Field(default=None, description="Label column; default: the task name.")
    classes: int | None = Field(default=None, ge=3, le=10_000, description="Number of classes (multiclass only).")

    @model_validator(mode="after")
    def _classes_match_type(self) -> TaskSpec:
        if self.type == TaskType.MULTICLASS and self.classes is None:
            raise ValueError(f"task '{self.name}' is multiclass: give its number of classes in 'classes'")
        if self.type != TaskType.MULTICLASS and self.classes is not None:
            raise ValueError(f"task '{self.name}' is {self.type.value}: 'classes' applies to multiclass tasks only")
        return self

    @property
    def label_column(self) -> str:
        return self.label or self.name

    @property
    def output_width(self) -> int:
        return self.classes or 1

    def to_task(self) -> Task:
        return Task(name=self.name, type=self.type, label=self.label_column, num_classes=self.output_width)


class Hyperparameters(StrictModel):
    """The fusion network's size and its training budget."""

    d_model: int = Field(default=16, ge=4, le=1024, description="Width of the task and component tokens.")
    heads: int = Field(default=2, ge=1, le=64, description="Attention heads; must divide d_model.")
    levels: int = Field(default=3, ge=1, le=16, description="Fusion levels: component outputs taken per source.")
    tower_hidden: int = Field(default=16, ge=1, le=4096, description="Hidden width of each task's tower.")
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    max_epochs: int = Field(default=30, ge=1, le=1000)
    patience: int = Field(default=2, ge=1, le=100, description="Epochs without improvement before stopping.")
    seed: int = Field(default=0, ge=0, le=SEED_LIMIT)
    finetune_learning_rate_scale: float = Field(
        default=0.1, gt=0, le=1.0, description="Under `finetune`, source weights learn this much slower."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Hyperparameters:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        return self


DEFAULT_HYPERPARAMETERS = Hyperparameters()
"""The engine's configurations take their defaults from here, so that every entry point agrees."""


class FusionPlan(StrictModel):
    """What a fusion job does with its tasks, whichever way its models and data are named."""

    strategy: Strategy = Strategy.FROZEN
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    baselines: list[BaselineKind] = Field(
        default_factory=list, description="From-scratch multi-task models to train for comparison in the report."
    )


class ModelFile(StrictModel):
    path: Path
    weights: Path | None = Field(default=None, description="Companion weights file; default: <path>.data if present.")
    name: str | None = None
    input_columns: dict[str, list[str]] = Field(default_factory=dict)


class FileTaskSpec(TaskSpec):
    models: list[ModelFile] = Field(min_length=1)


class DataFiles(StrictModel):
    train: Path
    validation: Path | None = None
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    test: Path | None = None

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataFiles:
        if (self.validation is None) == (self.validation_fraction is None):
            raise ValueError("give either 'validation' (a file) or 'validation_fraction' (e.g. 0.1), not both")
        return self


class FuseSpec(FusionPlan):
    """A fusion run from files, for `fusebox fuse SPEC`."""

    tasks: list[FileTaskSpec] = Field(min_length=1)
    data: DataFiles
    output: Path = Path("fused.onnx")
    report: Path | None = None

    def relative_to(self, folder: Path) -> FuseSpec:
        """Relative paths in a spec file are taken from the file's folder."""

        def resolve(path: Path) -> Path:
            return path if path.is_absolute() else folder / path

        copy = self.model_copy(deep=True)
        for task in copy.tasks:
            for model in task.models:
                model.path = resolve(model.path)
                model.weights = model.weights and resolve(model.weights)
        copy.data.train = resolve(copy.data.train)
        copy.data.validation = copy.data.validation and resolve(copy.data.validation)
        copy.data.test = copy.data.test and resolve(copy.data.test)
        copy.output = resolve(copy.output)
        copy.report = copy.report and resolve(copy.report)
        return copy
