"""Train and evaluate zoo models on tables or pandas frames, through the engine's one training loop."""

from __future__ import annotations

from typing import Unpack

import pandas as pd
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.data.stream import ChunkSource, table_source
from fusion.data.tables import Table, as_table
from fusion.data.tensor_tables import TensorTable, feature_tensors, label_tensors
from fusion.tasks import Task
from fusion.training import FitOptions, TrainConfig, TrainResult, evaluate, fit


def frame_tensors(frame: pd.DataFrame, schema: FeatureSchema, tasks: list[Task]) -> tuple[TensorTable, TensorTable]:
    """(features, labels) tensor tables of `frame`, after checking its columns against `schema`."""
    schema.check_frame(frame)
    return feature_tensors(frame, schema), label_tensors(frame, tasks)


def schema_source(data: Table | pd.DataFrame, schema: FeatureSchema, tasks: list[Task]) -> ChunkSource:
    """The schema's feature columns and the tasks' labels, read and checked chunk by chunk."""

    def features(frame: pd.DataFrame) -> TensorTable:
        schema.check_frame(frame)
        return feature_tensors(frame, schema)

    return table_source(as_table(data), schema.input_names, features, tasks)


def train_model(
    model: nn.Module,
    tasks: list[Task],
    train: Table | pd.DataFrame,
    validation: Table | pd.DataFrame,
    schema: FeatureSchema,
    config: TrainConfig,
    **fit_options: Unpack[FitOptions],
) -> TrainResult:
    """Train `model` in place on `tasks` (see `fusion.training.fit`; `fit_options` go to it)."""
    train_source, validation_source = schema_source(train, schema, tasks), schema_source(validation, schema, tasks)
    return fit(model, tasks, train_source, validation_source, config, **fit_options)


def evaluate_model(
    model: nn.Module, tasks: list[Task], data: Table | pd.DataFrame, schema: FeatureSchema
) -> dict[str, float]:
    """Each task's metric (AUC for binary tasks) on `data`, e.g. the test rows."""
    return evaluate(model, schema_source(data, schema, tasks), tasks)
