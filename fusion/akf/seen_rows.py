"""Has a source model been trained on the fusion's training rows?

Fusion learns how far to trust each source from the sources' outputs on its training rows. A model scores
the rows it was trained on far better than rows it never saw (boosted trees most of all: their training
AUC is often near 1), so a fusion trained there learns to trust it much more than it deserves, and then
loses to that model on new rows: the stacking problem. Each source is therefore also scored on the first
training rows and compared with its validation score; a large gap gets a warning in the report that says
to fuse on rows the sources did not see.
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
SEEN_ERROR_RATIO = 0.7
"""Warn when a source's error on the training rows (1 - AUC, 1 - accuracy, or RMSE) is below this share
of its error on the validation rows. A model that never saw either set scores both alike up to sampling
noise (a few percent of the error at these sizes); an early-stopped neural network trained on the rows is
usually within 10-20%; a boosted ensemble trained on them typically has well under half its validation
error there. 0.7 sits between the last two: it flags models that memorised the rows, not mild fitting."""


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
        for part, chunk_outputs in zip(outputs, components.read(chunk, frame), strict=True):
            part.append(chunk_outputs.output[:wanted])
        labels.append(frame[label_columns].iloc[:wanted])
        taken += len(labels[-1])
    return [np.concatenate(part) for part in outputs], pd.concat(labels, ignore_index=True)


def seen_rows_warnings(
    tasks: list[Task], sources: list[FusionSource], scores: list[Score], sample_rows: int
) -> list[str]:
    """A line for each source (scored in `scores`, in order) whose score on the first `sample_rows`
    training rows says it has been trained on them, with what to change."""
    by_name = {task.name: task for task in tasks}
    warnings = []
    for source, score in zip(sources, scores, strict=True):
        task = by_name[source.task]
        if looks_seen(task, score):
            warnings.append(
                f"source {source.name}: {task.metric_name} {score.train:.4f} on the first {sample_rows:,} training "
                f"rows vs {score.validation:.4f} on validation - it has likely been trained on these rows, so the "
                f"fusion learns to trust it too much; fuse on rows the sources did not see (a held-out slice)"
            )
    return warnings


def _error(task: Task, metric: float) -> float:
    """The metric as an error, lower is better: every metric here is 'higher is better'."""
    return -metric if task.type == TaskType.REGRESSION else 1.0 - metric


def looks_seen(task: Task, score: Score) -> bool:
    """Whether `score.train` is so much better than `score.validation` that the rows were trained on."""
    if score.train is None or not (math.isfinite(score.train) and math.isfinite(score.validation)):
        return False
    return _error(task, score.train) < SEEN_ERROR_RATIO * _error(task, score.validation)
