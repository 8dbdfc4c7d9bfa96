"""Prediction tasks as the engine sees them: a name, a type, the label column, the number of classes.

Torch-free, like fusion/spec.py, so that the API can build tasks without loading PyTorch; their losses are in
fusion/losses.py and their metrics in fusion/metrics.py."""

from __future__ import annotations

from dataclasses import dataclass

from fusion.task_types import TaskType


@dataclass(frozen=True)
class Task:
    """One prediction task. `label` is the data column holding its target."""

    name: str
    type: TaskType
    label: str
    num_classes: int = 1

    def __post_init__(self) -> None:
        if self.type == TaskType.MULTICLASS and self.num_classes < 3:
            raise ValueError(f"task '{self.name}': a multiclass task needs num_classes >= 3")

    @property
    def output_width(self) -> int:
        """Width of the model's raw output for this task: 1, or the number of classes."""
        return self.num_classes if self.type == TaskType.MULTICLASS else 1

    @property
    def metric_name(self) -> str:
        return {TaskType.BINARY: "auc", TaskType.REGRESSION: "neg_rmse", TaskType.MULTICLASS: "accuracy"}[self.type]
