"""Metrics on numpy arrays. Every metric is 'higher is better' so that early stopping has one rule."""

from __future__ import annotations

import numpy as np

from fusion.task_types import TaskType
from fusion.tasks import Task


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, ties in `scores` counted as half (the Mann-Whitney statistic)."""
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positives = labels > 0.5
    n_pos = int(positives.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    is_new_value = np.concatenate(([True], sorted_values[1:] != sorted_values[:-1]))
    group = np.cumsum(is_new_value) - 1
    first = np.flatnonzero(is_new_value)
    last = np.concatenate((first[1:], [values.size])) - 1
    mean_rank = (first + last) / 2 + 1
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def negative_rmse(targets: np.ndarray, predictions: np.ndarray) -> float:
    return -float(np.sqrt(np.mean((np.asarray(targets, np.float64) - np.asarray(predictions, np.float64)) ** 2)))


def accuracy(labels: np.ndarray, class_probabilities: np.ndarray) -> float:
    return float(np.mean(np.argmax(class_probabilities, axis=-1) == labels))


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
