"""The Adaptive Knowledge Fusion (AKF) network: what fusion trains around the frozen source components.

Per fusion level l, every source model contributes one component output (its representation at that
depth), projected to a common width d: a component token. Each task carries a state token. At each
level, for each task:
  1. intra-task mixture: a gate driven by the task's state mixes that task's own component tokens,
     and the mixture is added to the task state;
  2. inter-task attention: a Transformer block (multi-head self-attention with residual, LayerNorm
     and feed-forward) runs over all task tokens and all component tokens, so each task can draw on
     the other tasks' components; the task positions become the new task states.
A tower per task reads the final state. Its last layer starts at zero and its output is added to a
learned mixture of the task's source model outputs (logits), initialised to their mean, so training
starts from the ensemble of the source models and can only be pushed away from it by the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fusion.tasks import Task, TaskType

_PROBABILITY_FLOOR = 1e-7


@dataclass(frozen=True)
class AKFConfig:
    d_model: int = 16
    heads: int = 2
    levels: int = 3
    ffn_multiplier: int = 2
    tower_hidden: int = 16


@dataclass(frozen=True)
class SourceSlot:
    """What the fusion network knows of one source model."""

    name: str
    task_index: int
    level_widths: tuple[int, ...]
    """Flattened width of the component output used at each fusion level."""
    output_is_probability: bool


@dataclass(frozen=True)
class FusionLayout:
    tasks: tuple[Task, ...]
    sources: tuple[SourceSlot, ...]

    def sources_of(self, task_index: int) -> list[int]:
        return [i for i, source in enumerate(self.sources) if source.task_index == task_index]


class TaskAttention(nn.Module):
    """Multi-head attention from the task tokens to every token (tasks and components).

    Only the task positions are read after each level, so only they are computed as queries: the same
    result as full self-attention sliced to the task positions, at a fraction of the cost. Sequences
    are a handful of tokens long, where many tiny per-row matmuls are slow on a CPU; instead the
    query-key products are formed by broadcasting and summed per head with one small matmul.
    """

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        self.scale = 1.0 / math.sqrt(d_model // heads)
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        head_of_channel = torch.arange(d_model) // (d_model // heads)
        self.register_buffer("head_sum", F.one_hot(head_of_channel, heads).float(), persistent=False)

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """queries [B, T, d] attend over tokens [B, S, d] -> [B, T, d]."""
        keys, values = self.key_value(tokens).unsqueeze(1).chunk(2, dim=-1)  # [B, 1, S, d] each
        scores = (self.query(queries).unsqueeze(2) * keys) @ self.head_sum * self.scale  # [B, T, S, heads]
        weights = torch.softmax(scores, dim=2) @ self.head_sum.T  # per channel: [B, T, S, d]
        return self.out((weights * values).sum(2))


class TransformerBlock(nn.Module):
    """Pre-LayerNorm Transformer encoder block, evaluated at the task positions."""

    def __init__(self, d_model: int, heads: int, ffn_multiplier: int) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(d_model)
        self.attention = TaskAttention(d_model, heads)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(
            nn.Linear(d_model, ffn_multiplier * d_model), nn.GELU(), nn.Linear(ffn_multiplier * d_model, d_model)
        )

    def forward(self, task_tokens: torch.Tensor, other_tokens: torch.Tensor) -> torch.Tensor:
        normed = self.attention_norm(torch.cat([task_tokens, other_tokens], dim=1))
        tasks = task_tokens + self.attention(normed[:, : task_tokens.shape[1]], normed)
        return tasks + self.ffn(self.ffn_norm(tasks))


class AKFLevel(nn.Module):
    """One AKF module: projections, intra-task gate and inter-task Transformer block for one level."""

    def __init__(self, layout: FusionLayout, level: int, config: AKFConfig) -> None:
        super().__init__()
        d = config.d_model
        self.projections = nn.ModuleList(nn.Linear(source.level_widths[level], d) for source in layout.sources)
        self.source_embedding = nn.Parameter(torch.zeros(len(layout.sources), d))
        self.gate = nn.Linear(d, len(layout.sources))
        own_sources = torch.zeros(len(layout.tasks), len(layout.sources), dtype=torch.bool)
        for index, source in enumerate(layout.sources):
            own_sources[source.task_index, index] = True
        self.register_buffer("gate_mask", torch.where(own_sources, 0.0, -math.inf), persistent=False)
        self.block = TransformerBlock(d, config.heads, config.ffn_multiplier)

    @torch.no_grad()
    def calibrate(self, source_index: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Start the source's projection as if its inputs were standardised with this mean and std.

        Component outputs come on very different scales; folding the standardisation into the initial
        weights gives every token a comparable scale at no cost per step (the transformer block's own
        LayerNorm keeps them comparable afterwards)."""
        projection = self.projections[source_index]
        projection.weight.div_(std.clamp_min(1e-6))
        projection.bias.sub_(projection.weight @ mean)

    def forward(self, task_states: torch.Tensor, component_outputs: list[torch.Tensor]) -> torch.Tensor:
        """task_states [B, T, d], one [B, width] tensor per source -> new task states [B, T, d]."""
        tokens = torch.stack([project(x) for project, x in zip(self.projections, component_outputs, strict=True)], 1)
        gate = torch.softmax(self.gate(task_states) + self.gate_mask, dim=-1)
        task_states = task_states + gate @ tokens
        return self.block(task_states, tokens + self.source_embedding)


class AKFusion(nn.Module):
    """Stacked AKF levels, per-task towers, and the residual mixture of source outputs."""

    def __init__(self, layout: FusionLayout, config: AKFConfig, adaptive: bool = False) -> None:
        super().__init__()
        self.layout = layout
        self.config = config
        d = config.d_model
        self.task_embedding = nn.Parameter(torch.randn(len(layout.tasks), d) * 0.02)
        self.levels = nn.ModuleList(AKFLevel(layout, level, config) for level in range(config.levels))
        self.towers = nn.ModuleList(_tower(d, config.tower_hidden, task.output_width) for task in layout.tasks)
        self.source_mix = nn.ParameterList(
            nn.Parameter(torch.full((len(layout.sources_of(t)),), 1.0 / len(layout.sources_of(t))))
            for t in range(len(layout.tasks))
        )
        # Adapters feed a task's fused state back into its own sources' next component (adaptive strategies).
        self.adapters = nn.ModuleList(
            nn.ModuleList(_zero_linear(d, source.level_widths[level]) for source in layout.sources)
            for level in range(config.levels - 1)
        ) if adaptive else None  # fmt: skip

    def calibrate(self, statistics: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """statistics[source][level] = (mean, std) of that component output over the training rows."""
        for source_index, per_level in enumerate(statistics):
            for level, (mean, std) in enumerate(per_level):
                self.levels[level].calibrate(source_index, mean, std)

    def initial_states(self, batch_size: int) -> torch.Tensor:
        return self.task_embedding.unsqueeze(0).expand(batch_size, -1, -1)

    def fuse_level(self, level: int, task_states: torch.Tensor, component_outputs: list[torch.Tensor]) -> torch.Tensor:
        return self.levels[level](task_states, component_outputs)

    def injection(self, level: int, source_index: int, task_states: torch.Tensor) -> torch.Tensor:
        """What the adaptive strategies add to source `source_index`'s output at `level` before its next
        component runs."""
        assert self.adapters is not None, "injections exist only in adaptive fusion"
        task = self.layout.sources[source_index].task_index
        return self.adapters[level][source_index](task_states[:, task])

    def task_outputs(self, task_states: torch.Tensor, source_outputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw outputs per task: logits (binary, multiclass) or values (regression)."""
        outputs = {}
        for t, task in enumerate(self.layout.tasks):
            sources = self.layout.sources_of(t)
            source_logits = torch.stack(
                [_as_logits(task, source_outputs[i], self.layout.sources[i].output_is_probability) for i in sources],
                dim=-1,
            )
            ensemble = (source_logits * self.source_mix[t]).sum(-1)
            tower = self.towers[t](task_states[:, t])
            outputs[task.name] = ensemble + (tower.squeeze(-1) if task.output_width == 1 else tower)
        return outputs

    def forward(self, component_outputs: list[list[torch.Tensor]], source_outputs: list[torch.Tensor]) -> dict:
        """component_outputs[source][level] is [B, width]; source_outputs[source] the source's own output."""
        states = self.initial_states(source_outputs[0].shape[0])
        for level in range(self.config.levels):
            states = self.fuse_level(level, states, [per_level[level] for per_level in component_outputs])
        return self.task_outputs(states, source_outputs)


def _tower(d_model: int, hidden: int, output_width: int) -> nn.Sequential:
    last = _zero_linear(hidden, output_width)
    return nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), last)


def _zero_linear(in_width: int, out_width: int) -> nn.Linear:
    layer = nn.Linear(in_width, out_width)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _as_logits(task: Task, output: torch.Tensor, is_probability: bool) -> torch.Tensor:
    """A source model's output in the space the fused head adds in: logits, or regression values."""
    if task.type == TaskType.REGRESSION or not is_probability:
        return output.reshape(output.shape[0], -1).squeeze(-1) if task.output_width == 1 else output
    if task.type == TaskType.BINARY:
        p = output.reshape(-1).clamp(_PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
        return torch.log(p) - torch.log1p(-p)
    return torch.log(output.clamp_min(_PROBABILITY_FLOOR))
