"""Column tables as tensors, and shuffled mini-batches over them without per-row Python work."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import torch

from fusion.data.schema import FeatureSchema
from fusion.tasks import Task

TensorTable = dict[str, torch.Tensor]
"""Named tensors that share their first (row) dimension."""


def feature_tensors(frame: pd.DataFrame, schema: FeatureSchema) -> TensorTable:
    """One tensor per feature column: int64 ids for categorical columns, float32 for dense ones."""
    table = {f.name: torch.from_numpy(frame[f.name].to_numpy(dtype=np.int64, copy=True)) for f in schema.categorical}
    table.update({name: torch.from_numpy(frame[name].to_numpy(dtype=np.float32, copy=True)) for name in schema.dense})
    return table


def label_tensors(frame: pd.DataFrame, tasks: list[Task]) -> TensorTable:
    """One float32 tensor per task, NaN where the row has no label."""
    return {task.name: torch.from_numpy(frame[task.label].to_numpy(dtype=np.float32, copy=True)) for task in tasks}


def num_rows(table: Mapping[str, torch.Tensor]) -> int:
    return next(iter(table.values())).shape[0]


def take(table: Mapping[str, torch.Tensor], rows: torch.Tensor | slice) -> TensorTable:
    if isinstance(rows, slice):
        return {name: tensor[rows] for name, tensor in table.items()}
    # index_select copies whole rows; advanced indexing goes element by element and is several times slower.
    return {name: tensor.index_select(0, rows) for name, tensor in table.items()}


def to_device(table: Mapping[str, torch.Tensor], device: torch.device) -> TensorTable:
    return {name: tensor.to(device) for name, tensor in table.items()}


def shuffled_batches(
    features: TensorTable, labels: TensorTable, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[TensorTable, TensorTable]]:
    """Mini-batches in a random order drawn from `generator` (so a seed fixes the order)."""
    order = torch.randperm(num_rows(features), generator=generator)
    for start in range(0, order.numel(), batch_size):
        rows = order[start : start + batch_size].to(next(iter(features.values())).device)
        yield take(features, rows), take(labels, rows)


def sequential_batches(features: TensorTable, batch_size: int) -> Iterator[TensorTable]:
    for start in range(0, num_rows(features), batch_size):
        yield take(features, slice(start, start + batch_size))
