"""From-scratch multi-task baselines trained on the same data and features as a fusion, for its report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.data.tables import Table, as_table, largest_values, read_head
from fusion.task_types import TaskType
from fusion.tasks import Task
from fusion.training import CancelCheck, TrainConfig, TrainResult, predict
from fusion.zoo import build_multitask_model, schema_source, train_model
from fusion.zoo.layers import TaskHead

PRIOR_ROWS = 100_000
"""Training rows a binary task's label rate is read from, to start its head at."""


@dataclass
class BaselineResult:
    kind: str
    predictions: dict[str, dict[str, np.ndarray]]
    """split -> task -> predictions, for the validation and test splits."""
    training: TrainResult
    trainable_parameters: int


def baseline_schema(sources: list[FusionSource], tables: dict[str, Table]) -> FeatureSchema:
    """Every column the job's sources read, one feature each, whatever input tensors the sources read them
    through (one column per input, or several in one [N, k] tensor via input_columns): a column is a
    categorical id when a source embeds it or the data holds integers there, a dense value otherwise.
    Id ranges come from the models where their graphs show them, and from the data."""
    columns = list(dict.fromkeys(column for source in sources for column in source.columns))
    categorical: dict[str, int] = {}
    for source in sources:
        for spec in source.signature.inputs:
            if spec.kind == "categorical":
                for column in source.columns_of(spec.name):
                    categorical[column] = max(categorical.get(column, 0), spec.cardinality or 0)
    sample = read_head(tables["train"], columns, 1)
    for column in columns:
        if column not in categorical and np.issubdtype(sample[column].dtype, np.integer):
            categorical[column] = 0
    for column, seen in largest_values(tables.values(), list(categorical)).items():
        categorical[column] = max(categorical[column], seen + 1)
    return FeatureSchema(
        categorical=tuple(CategoricalFeature(name, categorical[name]) for name in columns if name in categorical),
        dense=tuple(name for name in columns if name not in categorical),
    )


def train_baseline(
    kind: str,
    tasks: list[Task],
    sources: list[FusionSource],
    splits: Mapping[str, Table | pd.DataFrame],
    config: TrainConfig,
    *,
    should_cancel: CancelCheck | None = None,
) -> BaselineResult:
    tables = {split: as_table(data) for split, data in splits.items()}  # benches hand in frames
    schema = baseline_schema(sources, tables)
    model = build_multitask_model(kind, schema, tasks)
    start_at_label_rates(model, tasks, tables["train"])
    training = train_model(
        model, tasks, tables["train"], tables["validation"], schema, config, should_cancel=should_cancel
    )
    model.cpu()
    predictions = {
        split: predict(model, schema_source(table, schema, tasks), tasks)
        for split, table in tables.items()
        if split != "train"
    }
    return BaselineResult(
        kind=kind,
        predictions=predictions,
        training=training,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )


def start_at_label_rates(model: nn.Module, tasks: list[Task], train: Table) -> None:
    """Each binary task's head starts at the log-odds of its label's rate on the first training rows, not
    at even odds. With rare positives (Census income: 6%) the first steps from even odds push every weight
    down in proportion to its input, and inputs are larger for the positives: MMoE, PLE and Shared-Bottom
    ranked them last for a while (income test AUC 0.21 to 0.31 after one epoch of 20k rows), and a small
    job's early stopping could keep such an epoch."""
    binary = [task for task in tasks if task.type == TaskType.BINARY]
    if not binary:
        return
    labels = read_head(train, list(dict.fromkeys(task.label for task in binary)), PRIOR_ROWS)
    heads = [module for module in model.modules() if isinstance(module, TaskHead)]
    for head in heads:
        if head.task.type == TaskType.BINARY:
            rate = min(max(float(labels[head.task.label].mean()), 1e-4), 1 - 1e-4)
            with torch.no_grad():
                head.linear.bias.fill_(math.log(rate / (1 - rate)))
