"""From-scratch multi-task baselines trained on the same data and features as a fusion, for its report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.tasks import Task
from fusion.training import CancelCheck, TrainConfig, TrainResult, predict
from fusion.zoo import build_multitask_model, frame_tensors, train_model


@dataclass
class BaselineResult:
    kind: str
    predictions: dict[str, dict[str, np.ndarray]]
    """split -> task -> predictions, for the validation and test splits."""
    training: TrainResult
    trainable_parameters: int


def baseline_schema(sources: list[FusionSource], frames: dict[str, pd.DataFrame]) -> FeatureSchema:
    """The union of the source models' one-column inputs; id ranges from the models or the data."""
    categorical: dict[str, int] = {}
    dense: list[str] = []
    for source in sources:
        for spec in source.signature.inputs:
            if spec.width != 1:
                continue
            (column,) = source.columns_of(spec.name)
            if spec.kind == "categorical":
                seen = max(int(frame[column].max()) for frame in frames.values()) + 1
                categorical[column] = max(categorical.get(column, 0), spec.cardinality or 0, seen)
            elif column not in dense:
                dense.append(column)
    return FeatureSchema(
        categorical=tuple(CategoricalFeature(name, size) for name, size in categorical.items()),
        dense=tuple(dense),
    )


def train_baseline(
    kind: str,
    tasks: list[Task],
    sources: list[FusionSource],
    splits: dict[str, pd.DataFrame],
    config: TrainConfig,
    *,
    should_cancel: CancelCheck | None = None,
) -> BaselineResult:
    schema = baseline_schema(sources, splits)
    model = build_multitask_model(kind, schema, tasks)
    training = train_model(
        model, tasks, splits["train"], splits["validation"], schema, config, should_cancel=should_cancel
    )
    model.cpu()
    predictions = {
        split: predict(model, frame_tensors(frame, schema, tasks)[0], tasks)
        for split, frame in splits.items()
        if split != "train"
    }
    return BaselineResult(
        kind=kind,
        predictions=predictions,
        training=training,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
