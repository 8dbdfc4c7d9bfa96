"""Train and evaluate zoo models on pandas frames, through the engine's one training loop."""

from __future__ import annotations

from typing import Unpack

import pandas as pd
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.data.tensor_tables import TensorTable, feature_tensors, label_tensors
from fusion.tasks import Task
from fusion.training import FitOptions, TrainConfig, TrainResult, evaluate, fit


def frame_tensors(frame: pd.DataFrame, schema: FeatureSchema, tasks: list[Task]) -> tuple[TensorTable, TensorTable]:
    """(features, labels) tensor tables of `frame`, after checking its columns against `schema`."""
    schema.check_frame(frame)
    return feature_tensors(frame, schema), label_tensors(frame, tasks)


def train_model(
    model: nn.Module,
    tasks: list[Task],
    train_frame: pd.DataFrame,
    validation_frame: pd.DataFrame,
    schema: FeatureSchema,
    config: TrainConfig,
    **fit_options: Unpack[FitOptions],
) -> TrainResult:
    """Train `model` in place on `tasks` (see `fusion.training.fit`; `fit_options` go to it)."""
    train = frame_tensors(train_frame, schema, tasks)
    validation = frame_tensors(validation_frame, schema, tasks)
    return fit(model, tasks, train, validation, config, **fit_options)


def evaluate_model(model: nn.Module, tasks: list[Task], frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    """Each task's metric (AUC for binary tasks) on `frame`, e.g. the test rows."""
    features, labels = frame_tensors(frame, schema, tasks)
    return evaluate(model, features, labels, tasks)
