"""The fusion job specification: tasks, hyper-parameters and strategy, validated with Pydantic.

The command line reads it from a JSON or YAML file whose models are file paths; the service uses the
same task and hyper-parameter models with stored model ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusion.akf.model import AKFConfig
from fusion.akf.strategies import Strategy
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig

BaselineKind = Literal["shared_bottom", "mmoe", "ple"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSpec(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
    type: TaskType
    label: str | None = Field(default=None, description="Label column; defaults to the task name.")
    classes: int | None = Field(default=None, ge=3, le=10_000, description="Number of classes (multiclass only).")

    @model_validator(mode="after")
    def _classes_match_type(self) -> TaskSpec:
        if self.type == TaskType.MULTICLASS and self.classes is None:
            raise ValueError(f"task '{self.name}' is multiclass: give its number of classes in 'classes'")
        if self.type != TaskType.MULTICLASS and self.classes is not None:
            raise ValueError(f"task '{self.name}' is {self.type.value}: 'classes' applies to multiclass tasks only")
        return self

    def to_task(self) -> Task:
        return Task(name=self.name, type=self.type, label=self.label or self.name, num_classes=self.classes or 1)


class Hyperparameters(_Strict):
    d_model: int = Field(default=16, ge=4, le=1024)
    heads: int = Field(default=2, ge=1, le=64)
    levels: int = Field(default=3, ge=1, le=16)
    tower_hidden: int = Field(default=16, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    batch_size: int = Field(default=1024, ge=1, le=1_000_000)
    max_epochs: int = Field(default=30, ge=1, le=1000)
    patience: int = Field(default=2, ge=1, le=100)
    seed: int = Field(default=0, ge=0)
    finetune_learning_rate_scale: float = Field(default=0.1, gt=0, le=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Hyperparameters:
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
        return self

    def akf_config(self) -> AKFConfig:
        return AKFConfig(d_model=self.d_model, heads=self.heads, levels=self.levels, tower_hidden=self.tower_hidden)

    def train_config(self, device: str | None = None) -> TrainConfig:
        return TrainConfig(
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            seed=self.seed,
            device=device,
        )


class ModelFile(_Strict):
    path: Path
    weights: Path | None = Field(default=None, description="Companion weights file; default: <path>.data if present.")
    name: str | None = None
    input_columns: dict[str, list[str]] = Field(default_factory=dict)


class FileTaskSpec(TaskSpec):
    models: list[ModelFile] = Field(min_length=1)


class DataFiles(_Strict):
    train: Path
    validation: Path | None = None
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    test: Path | None = None

    @model_validator(mode="after")
    def _one_validation_source(self) -> DataFiles:
        if (self.validation is None) == (self.validation_fraction is None):
            raise ValueError("give either 'validation' (a file) or 'validation_fraction' (e.g. 0.1), not both")
        return self


class FuseSpec(_Strict):
    """A fusion run from files, for `fusebox fuse`."""

    tasks: list[FileTaskSpec] = Field(min_length=1)
    data: DataFiles
    strategy: Strategy = Strategy.FROZEN
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    baselines: list[BaselineKind] = Field(default_factory=list)
    output: Path = Path("fused.onnx")
    report: Path | None = None

    @classmethod
    def from_file(cls, path: Path) -> FuseSpec:
        """Read JSON or YAML; relative paths inside are taken from the spec file's folder."""
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping with 'tasks' and 'data'")
        spec = cls.model_validate(raw)
        return spec.relative_to(path.parent)

    def relative_to(self, folder: Path) -> FuseSpec:
        def resolve(path: Path | None) -> Path | None:
            return path if path is None or path.is_absolute() else folder / path

        copy = self.model_copy(deep=True)
        for task in copy.tasks:
            for model in task.models:
                model.path = resolve(model.path)
                model.weights = resolve(model.weights)
        copy.data.train = resolve(copy.data.train)
        copy.data.validation = resolve(copy.data.validation)
        copy.data.test = resolve(copy.data.test)
        copy.output = resolve(copy.output)
        copy.report = resolve(copy.report)
        return copy
