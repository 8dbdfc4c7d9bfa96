"""Reference single-task architectures: the kinds of trained models that users bring to fusion.

Each family is a small explicit module: stem -> body -> head, with `forward(inputs)` returning
{task.name: raw output} (a logit or value of shape [N], or class logits [N, C]). The families differ
in their bodies, which is what makes fusion across them heterogeneous.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.data.tensor_tables import TensorTable
from fusion.tasks import Task
from fusion.zoo.layers import MLP, FeatureStem, TaskHead, task_output


class MLPModel(nn.Module):
    """Stem -> k blocks of Linear+ReLU -> linear head: the paper's source model."""

    def __init__(
        self, schema: FeatureSchema, task: Task, *, hidden: tuple[int, ...] = (128, 64, 32), embedding_dim: int = 4
    ) -> None:
        super().__init__()
        self.schema, self.task = schema, task
        self.stem = FeatureStem(schema, embedding_dim)
        self.body = MLP(self.stem.width, hidden)
        self.head = TaskHead(self.body.out_width, task)

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        return {self.task.name: self.head(self.body(self.stem(inputs)))}


class CrossNetwork(nn.Module):
    """DCN-V2 cross layers, x_{l+1} = x_0 * (W_l x_l + b_l) + x_l: explicit bounded-degree interactions."""

    def __init__(self, width: int, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(num_layers))
        self.out_width = width

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class DCNModel(nn.Module):
    """Deep & Cross: a cross network beside a deep MLP, both reading the stem, concatenated into the head.

    The two parallel branches between the stem cut and the concat are what decomposition should
    recognise as one component with two sub-components.
    """

    def __init__(
        self,
        schema: FeatureSchema,
        task: Task,
        *,
        hidden: tuple[int, ...] = (128, 64),
        cross_layers: int = 2,
        embedding_dim: int = 4,
    ) -> None:
        super().__init__()
        self.schema, self.task = schema, task
        self.stem = FeatureStem(schema, embedding_dim)
        self.cross = CrossNetwork(self.stem.width, cross_layers)
        self.deep = MLP(self.stem.width, hidden)
        self.head = TaskHead(self.cross.out_width + self.deep.out_width, task)

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        x = self.stem(inputs)
        return {self.task.name: self.head(torch.cat([self.cross(x), self.deep(x)], dim=1))}


class FactorizationMachine(nn.Module):
    """FM second-order interactions over field vectors, by the O(F*D) identity 0.5*((sum v)^2 - sum v^2).

    Dense columns join as fields whose vector is a learned vector scaled by the value, as the DeepFM
    paper treats continuous fields. The pooled [N, D] interaction vector goes through a bias-free
    Linear initialised to ones: for one output that starts as exactly the classic FM sum, and it
    also gives multiclass tasks one interaction term per class.
    """

    def __init__(self, num_dense: int, embedding_dim: int, output_width: int) -> None:
        super().__init__()
        self.dense_vectors = nn.Parameter(torch.randn(num_dense, embedding_dim) * 0.05)
        self.output = nn.Linear(embedding_dim, output_width, bias=False)
        nn.init.ones_(self.output.weight)

    def forward(self, field_embeddings: torch.Tensor, dense_values: torch.Tensor) -> torch.Tensor:
        dense_fields = dense_values.unsqueeze(-1) * self.dense_vectors
        fields = torch.cat([field_embeddings, dense_fields], dim=1)
        pooled = 0.5 * (fields.sum(dim=1).square() - fields.square().sum(dim=1))
        return self.output(pooled)


class DeepFMModel(nn.Module):
    """DeepFM: first-order terms + FM second-order interactions + deep MLP, summed into the logit.

    FM and the deep MLP share the stem's field embeddings; the first-order terms are the stem's wide
    (1-dim) id weights plus a linear term over the dense values.
    """

    def __init__(
        self, schema: FeatureSchema, task: Task, *, hidden: tuple[int, ...] = (128, 64), embedding_dim: int = 4
    ) -> None:
        super().__init__()
        self.schema, self.task = schema, task
        self.stem = FeatureStem(schema, embedding_dim, wide=True)
        self.first_order = nn.Linear(self.stem.wide_width + self.stem.num_dense, task.output_width)
        self.fm = FactorizationMachine(self.stem.num_dense, embedding_dim, task.output_width)
        self.deep = MLP(self.stem.deep_width, hidden)
        self.deep_out = nn.Linear(self.deep.out_width, task.output_width)

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        x = self.stem(inputs)
        wide = torch.cat([self.stem.wide_terms(x), self.stem.dense_values(x)], dim=1)
        first = self.first_order(wide)
        second = self.fm(self.stem.field_embeddings(x), self.stem.dense_values(x))
        deep = self.deep_out(self.deep(self.stem.deep_input(x)))
        return {self.task.name: task_output(self.task, first + second + deep)}


class WideDeepModel(nn.Module):
    """Wide & Deep, joined as in the original paper: one final Linear over [wide terms | deep last hidden].

    The wide part is the stem's 1-dim weight per id plus the dense values; the deep part is an MLP over
    the field embeddings and dense values.
    """

    def __init__(
        self, schema: FeatureSchema, task: Task, *, hidden: tuple[int, ...] = (128, 64), embedding_dim: int = 4
    ) -> None:
        super().__init__()
        self.schema, self.task = schema, task
        self.stem = FeatureStem(schema, embedding_dim, wide=True)
        self.deep = MLP(self.stem.deep_width, hidden)
        self.head = TaskHead(self.stem.wide_width + self.stem.num_dense + self.deep.out_width, task)

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        x = self.stem(inputs)
        deep = self.deep(self.stem.deep_input(x))
        joined = torch.cat([self.stem.wide_terms(x), self.stem.dense_values(x), deep], dim=1)
        return {self.task.name: self.head(joined)}


SINGLE_TASK_FAMILIES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLPModel,
    "dcn": DCNModel,
    "deepfm": DeepFMModel,
    "wide_deep": WideDeepModel,
}


def build_single_task_model(family: str, schema: FeatureSchema, task: Task, **hyper: object) -> nn.Module:
    """A fresh, untrained model of `family`; `hyper` overrides that family's default hyper-parameters."""
    if family not in SINGLE_TASK_FAMILIES:
        raise ValueError(f"unknown model family '{family}'; choose one of: {', '.join(SINGLE_TASK_FAMILIES)}")
    return SINGLE_TASK_FAMILIES[family](schema, task, **hyper)
