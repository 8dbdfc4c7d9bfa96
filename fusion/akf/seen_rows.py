"""Has a source model been trained on the fusion's training rows?

Fusion learns how far to trust each source from the sources' outputs on its training rows. A model scores
the rows it was trained on far better than rows it never saw (boosted trees most of all: on Census income,
LightGBM's AUC is 0.971 on its training rows and 0.954 on validation), so a fusion trained there learns to
trust it much more than it deserves, and then loses to that model on new rows: the stacking problem. Each
source is therefore also scored on the first training rows and compared with its validation score; a
large gap gets a warning in the report that says to fuse on rows the sources did not see.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fusion.akf.component_path import SplitComponents
from fusion.akf.report import Score
from fusion.akf.sources import FusionSource
from fusion.tasks import Task, TaskType

TRAIN_SAMPLE_ROWS = 200_000
"""Training rows each source is scored on: the first ones of the stream, so memory stays bounded (a few
outputs a row) however large the table; at this size the metric's sampling error is far below the gaps
that matter."""
SEEN_ERROR_RATIO = 0.8
"""Warn when a source's error on the training rows (1 - AUC, 1 - accuracy, or RMSE) is below this share
of its error on the validation rows. Measured on Census (bench/census_trees.py's sources, trained on 150k
rows and early-stopped on validation): on rows they never saw every source's ratio is 1.00-1.01; on their
own training rows the MLP's is 0.95, the DeepFM's 0.93, XGBoost's 0.72 and LightGBM's 0.63. 0.8 flags the
boosted models and leaves the neural networks' mild fitting alone."""
SEEN_STANDARD_ERRORS = 3.0
"""...and only when the gap is also this many standard errors of the two estimates: on small or skewed
samples the metric itself moves that much (an unseen MLP scored 0.965 AUC on 1,000 Census rows, with 60
positives among them, against 0.941 on validation: one and a half standard errors)."""


def training_sample(
    components: SplitComponents, label_columns: list[str], rows: int = TRAIN_SAMPLE_ROWS
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Each source's own output and the label columns on the first `rows` rows of a split, chunk by chunk."""
    table = components.table
    columns = list(dict.fromkeys([*components.columns, *label_columns]))
    outputs: list[list[np.ndarray]] = [[] for _ in components.runners]
    labels: list[pd.DataFrame] = []
    taken = 0
    for chunk in table.chunks:
        if taken >= rows:
            break
        frame = table.read(chunk, columns)
        wanted = rows - taken
        for part, output in zip(outputs, components.read_outputs(chunk, frame), strict=True):
            part.append(output[:wanted])
        labels.append(frame[label_columns].iloc[:wanted])
        taken += len(labels[-1])
    return [np.concatenate(part) for part in outputs], pd.concat(labels, ignore_index=True)


def seen_rows_warnings(
    tasks: list[Task],
    sources: list[FusionSource],
    scores: list[Score],
    sample_labels: pd.DataFrame,
    validation_labels: pd.DataFrame,
) -> list[str]:
    """A line for each source (scored in `scores`, in order) whose score on the training rows of
    `sample_labels` says it has been trained on them, with what to change."""
    by_name = {task.name: task for task in tasks}
    warnings = []
    for source, score in zip(sources, scores, strict=True):
        task = by_name[source.task]
        labels = (
            sample_labels[task.label].to_numpy(dtype=np.float64),
            validation_labels[task.label].to_numpy(np.float64),
        )
        if looks_seen(task, score, *labels):
            warnings.append(
                f"source {source.name}: {task.metric_name} {score.train:.4f} on the first {len(sample_labels):,} "
                f"training rows vs {score.validation:.4f} on validation - it has likely been trained on these "
                f"rows, so the fusion learns to trust it too much; fuse on rows the sources did not see (a "
                f"held-out slice)"
            )
    return warnings


def looks_seen(task: Task, score: Score, train_labels: np.ndarray, validation_labels: np.ndarray) -> bool:
    """Whether `score.train` (on rows labelled `train_labels`) is so much better than `score.validation`
    (on `validation_labels`) that the source was trained on those rows."""
    if score.train is None or not (math.isfinite(score.train) and math.isfinite(score.validation)):
        return False
    train, validation = _error(task, score.train), _error(task, score.validation)
    noise = math.hypot(
        _standard_error(task, score.train, train_labels), _standard_error(task, score.validation, validation_labels)
    )
    return train < SEEN_ERROR_RATIO * validation and validation - train > SEEN_STANDARD_ERRORS * noise


def _error(task: Task, metric: float) -> float:
    """The metric as an error, lower is better: every metric here is 'higher is better'."""
    return -metric if task.type == TaskType.REGRESSION else 1.0 - metric


def _standard_error(task: Task, metric: float, labels: np.ndarray) -> float:
    """The metric's sampling standard error on rows with these labels: Hanley and McNeil's for AUC, the
    binomial one for accuracy, RMSE / sqrt(2n) for RMSE (normal residuals)."""
    labels = labels[~np.isnan(labels)]
    rows = max(len(labels), 1)
    if task.type == TaskType.REGRESSION:
        return -metric / math.sqrt(2 * rows)
    if task.type == TaskType.MULTICLASS:
        return math.sqrt(max(metric * (1 - metric), 0.0) / rows)
    positives = int((labels > 0.5).sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.inf
    auc = metric
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    return math.sqrt(max(variance, 0.0) / (positives * negatives))
