"""Column tables as tensors (batches are cut from them in fusion/data/stream.py)."""

from __future__ import annotations

from collections.abc import Mapping

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
