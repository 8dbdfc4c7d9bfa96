"""Prediction tasks: their types, losses on partially labelled rows, and validation metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from fusion.metrics import accuracy, negative_rmse, roc_auc
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


def label_mask(labels: torch.Tensor) -> torch.Tensor:
    """True where a row carries a label; missing labels are NaN."""
    return ~torch.isnan(labels)


def task_loss(task: Task, raw_output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean loss over the rows that have a label (zero, with gradient, when none has).

    `raw_output` is a logit for binary tasks, a value for regression, and class logits for multiclass.
    Unlabelled rows are weighted out rather than selected, which keeps the step free of data-dependent
    shapes (no device synchronisation, no gather).
    """
    present = label_mask(labels)
    weights = present.to(raw_output.dtype)
    targets = torch.where(present, labels, torch.zeros_like(labels))
    if task.type == TaskType.BINARY:
        losses = F.binary_cross_entropy_with_logits(raw_output.reshape(-1), targets, reduction="none")
    elif task.type == TaskType.REGRESSION:
        losses = F.mse_loss(raw_output.reshape(-1), targets, reduction="none")
    else:
        losses = F.cross_entropy(raw_output, targets.long(), reduction="none")
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def to_prediction(task: Task, raw_output: torch.Tensor) -> torch.Tensor:
    """What the task answers: a probability (binary), a value, or class probabilities."""
    if task.type == TaskType.BINARY:
        return torch.sigmoid(raw_output.reshape(-1))
    if task.type == TaskType.REGRESSION:
        return raw_output.reshape(-1)
    return torch.softmax(raw_output, dim=-1)


def task_metric(task: Task, predictions: np.ndarray, labels: np.ndarray) -> float:
    """The task's validation metric (higher is better) over the labelled rows."""
    mask = ~np.isnan(labels)
    if not mask.any():
        return float("nan")
    y = labels[mask]
    p = predictions[mask]
    if task.type == TaskType.BINARY:
        return roc_auc(y, p)
    if task.type == TaskType.REGRESSION:
        return negative_rmse(y, p)
    return accuracy(y.astype(np.int64), p)
