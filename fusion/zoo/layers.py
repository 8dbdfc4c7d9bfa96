"""Building blocks shared by the zoo's models: the feature stem, MLP blocks and task heads.

Every zoo model starts with a `FeatureStem` that turns the input columns into ONE tensor. That
tensor is the first single-tensor cut of the exported ONNX graph, so decomposition finds a clean
stem component in every family. The blocks use only Linear/ReLU-style ops to keep the graphs simple.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.data.tensor_tables import TensorTable
from fusion.tasks import Task


class FeatureStem(nn.Module):
    """Columns -> one tensor laid out as [wide weights (F) | field embeddings (F*D) | dense values].

    All categorical fields share one embedding table; each field's ids are shifted by the field's
    offset into it, so the lookup is one gather instead of one per field. With `wide=True` a second,
    1-dim table holds one weight per id: the wide/first-order terms of Wide&Deep and DeepFM, kept
    inside the stem so that the stem output stays the model's single first cut.
    """

    offsets: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(self, schema: FeatureSchema, embedding_dim: int = 4, *, wide: bool = False) -> None:
        super().__init__()
        if not schema.input_names:
            raise ValueError("a model needs at least one input column; the feature schema is empty")
        self.categorical_names = [feature.name for feature in schema.categorical]
        self.dense_names = list(schema.dense)
        self.embedding_dim = embedding_dim
        cardinalities = torch.tensor([feature.cardinality for feature in schema.categorical], dtype=torch.int64)
        offsets = torch.cumsum(cardinalities, 0) - cardinalities
        self.register_buffer("offsets", offsets, persistent=False)
        total_ids = int(cardinalities.sum())
        has_ids = bool(self.categorical_names)
        self.embedding = nn.Embedding(total_ids, embedding_dim) if has_ids else None
        self.wide = nn.Embedding(total_ids, 1) if wide and has_ids else None
        if self.embedding is not None:
            # Small initial embeddings keep the 32-field sums (FM, first layers) in a sane range at start.
            nn.init.normal_(self.embedding.weight, std=0.05)
        if self.wide is not None:
            nn.init.zeros_(self.wide.weight)

    @property
    def num_fields(self) -> int:
        return len(self.categorical_names)

    @property
    def num_dense(self) -> int:
        return len(self.dense_names)

    @property
    def wide_width(self) -> int:
        return self.num_fields if self.wide is not None else 0

    @property
    def deep_width(self) -> int:
        """Width of [field embeddings | dense values], the part a deep network reads."""
        return self.num_fields * self.embedding_dim + self.num_dense

    @property
    def width(self) -> int:
        return self.wide_width + self.deep_width

    def forward(self, inputs: TensorTable) -> torch.Tensor:
        parts = []
        if self.embedding is not None:
            ids = torch.stack([inputs[name] for name in self.categorical_names], dim=1) + self.offsets
            if self.wide is not None:
                parts.append(self.wide(ids).flatten(1))
            parts.append(self.embedding(ids).flatten(1))
        if self.dense_names:
            parts.append(torch.stack([inputs[name] for name in self.dense_names], dim=1))
        return torch.cat(parts, dim=1)

    def wide_terms(self, stem_output: torch.Tensor) -> torch.Tensor:
        """[N, F]: the per-field wide weight of each row's id (empty when the stem has no wide table)."""
        return stem_output[:, : self.wide_width]

    def deep_input(self, stem_output: torch.Tensor) -> torch.Tensor:
        """[N, F*D + dense]: the field embeddings and dense values."""
        return stem_output[:, self.wide_width :]

    def field_embeddings(self, stem_output: torch.Tensor) -> torch.Tensor:
        """[N, F, D]: one embedding vector per categorical field."""
        embeddings = stem_output[:, self.wide_width : self.wide_width + self.num_fields * self.embedding_dim]
        return embeddings.unflatten(1, (self.num_fields, self.embedding_dim))

    def dense_values(self, stem_output: torch.Tensor) -> torch.Tensor:
        """[N, dense]: the dense columns as they came in."""
        return stem_output[:, self.width - self.num_dense :]


class DenseBlock(nn.Module):
    """Linear + ReLU: one block, which decomposition can take as one component."""

    def __init__(self, in_width: int, out_width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_width, out_width)
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x))


class MLP(nn.Sequential):
    """A stack of `DenseBlock`s with the given hidden widths (none: the identity)."""

    def __init__(self, in_width: int, hidden: tuple[int, ...]) -> None:
        widths = (in_width, *hidden)
        super().__init__(*(DenseBlock(a, b) for a, b in pairwise(widths)))
        self.out_width = widths[-1]


def task_output(task: Task, logits: torch.Tensor) -> torch.Tensor:
    """[N, width] -> the task's raw output: [N] for one-wide tasks, [N, C] for multiclass."""
    return logits.squeeze(-1) if task.output_width == 1 else logits


class TaskHead(nn.Module):
    """The final Linear to the task's output width."""

    def __init__(self, in_width: int, task: Task) -> None:
        super().__init__()
        self.task = task
        self.linear = nn.Linear(in_width, task.output_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return task_output(self.task, self.linear(x))


class Tower(nn.Module):
    """A task's own MLP then its head: the top of every multi-task model."""

    def __init__(self, in_width: int, task: Task, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.body = MLP(in_width, hidden)
        self.head = TaskHead(self.body.out_width, task)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
