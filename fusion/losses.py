"""Task losses on partially labelled rows, and raw outputs turned into what a task answers."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from fusion.task_types import TaskType
from fusion.tasks import Task


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
