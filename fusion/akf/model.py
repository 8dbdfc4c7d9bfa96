"""The Adaptive Knowledge Fusion (AKF) network: what fusion trains around the frozen source components.

Per fusion level l, every source model contributes one component output (its representation at that
depth). Each task carries a state token through the levels. At each level:
  1. every component output is projected to a component token;
  2. intra-task mixture: for each task, a gate driven by the task's state mixes the task's own
     component tokens, and the mixture is added to the task state;
  3. inter-task attention: a pre-LayerNorm Transformer block in which each task attends, with several
     heads, over every task token and every component token (its own task's and the other tasks'),
     followed by a feed-forward layer, both with residual connections.
A tower per task reads the final state. Its last layer starts at zero and its output is added to a
learned mixture of the task's source model outputs (logits), initialised to their mean, so training
starts from the ensemble of the source models and moves away from it only where the data says so.

Only task tokens are read after a level, so only they are computed as queries; component tokens enter
as keys and values through one small map shared by the level's components (projecting every component
straight to token, key and value would triple the widest matrix products of a step). On a CPU the cost of
a step at these sizes is dominated by the number of operations, so the network is written with as few as
it needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fusion.spec import DEFAULT_HYPERPARAMETERS, Hyperparameters
from fusion.tasks import Task, TaskType

_PROBABILITY_FLOOR = 1e-7
ADAPTER_STEP = 0.1
"""Injections reach every later layer of a frozen source, whose output the fused head starts from. Measured
in a tenth of a component output's spread, the optimiser moves them gently enough to keep those answers:
on Census, injections in raw units made training diverge, and in whole spreads they lost to the sources."""


@dataclass(frozen=True)
class AKFConfig:
    """The network's shape; the job's Hyperparameters (fusion/spec.py) hold the defaults."""

    d_model: int = DEFAULT_HYPERPARAMETERS.d_model
    heads: int = DEFAULT_HYPERPARAMETERS.heads
    levels: int = DEFAULT_HYPERPARAMETERS.levels
    tower_hidden: int = DEFAULT_HYPERPARAMETERS.tower_hidden
    ffn_multiplier: int = 2

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Hyperparameters) -> AKFConfig:
        return cls(
            d_model=hyperparameters.d_model,
            heads=hyperparameters.heads,
            levels=hyperparameters.levels,
            tower_hidden=hyperparameters.tower_hidden,
        )


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


class SourceProjections(nn.Module):
    """A separate affine map per source: one [B, width] output per source -> [B, sources, out_width]."""

    def __init__(self, in_widths: list[int], out_width: int) -> None:
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(width, out_width) for width in in_widths)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([linear(x) for linear, x in zip(self.maps, inputs, strict=True)], dim=1)

    def map_of(self, index: int) -> nn.Linear:
        """Input `index`'s map (nn.ModuleList hands out plain Modules)."""
        linear = self.maps[index]
        assert isinstance(linear, nn.Linear)
        return linear

    @torch.no_grad()
    def calibrate(self, index: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Start input `index`'s map as if that input were standardised with this mean and std."""
        linear = self.map_of(index)
        linear.weight.div_(std.clamp_min(1e-6))
        linear.bias.sub_(linear.weight @ mean)


class AKFLevel(nn.Module):
    """One AKF module: component projections, intra-task gate and inter-task Transformer block."""

    # Buffers, declared for the type checker (register_buffer adds them out of its sight).
    gate_mask: torch.Tensor
    head_sum: torch.Tensor

    def __init__(self, layout: FusionLayout, level: int, config: AKFConfig) -> None:
        super().__init__()
        d = config.d_model
        if d % config.heads:
            raise ValueError(f"d_model ({d}) must be a multiple of heads ({config.heads})")
        self.d_model = d
        self.scale = 1.0 / math.sqrt(d // config.heads)
        self.components = SourceProjections([source.level_widths[level] for source in layout.sources], d)
        self.component_kv = nn.Linear(d, 2 * d)
        self.gate = nn.Linear(d, len(layout.sources))
        own_sources = torch.zeros(len(layout.tasks), len(layout.sources), dtype=torch.bool)
        for index, source in enumerate(layout.sources):
            own_sources[source.task_index, index] = True
        self.register_buffer("gate_mask", torch.where(own_sources, 0.0, -math.inf), persistent=False)
        self.attention_norm = nn.LayerNorm(d)
        self.task_qkv = nn.Linear(d, 3 * d)
        self.attention_out = nn.Linear(d, d)
        head_of_channel = torch.arange(d) // (d // config.heads)
        self.register_buffer("head_sum", F.one_hot(head_of_channel, config.heads).float(), persistent=False)
        self.ffn_norm = nn.LayerNorm(d)
        self.ffn = nn.Sequential(
            nn.Linear(d, config.ffn_multiplier * d), nn.GELU(), nn.Linear(config.ffn_multiplier * d, d)
        )

    def forward(self, task_states: torch.Tensor, component_outputs: list[torch.Tensor]) -> torch.Tensor:
        """task_states [B, T, d]; component_outputs: one [B, width] tensor per source."""
        tokens = self.components(component_outputs)
        gate = torch.softmax(self.gate(task_states) + self.gate_mask, dim=-1)
        task_states = task_states + gate @ tokens
        component_keys, component_values = self.component_kv(tokens).split(self.d_model, dim=-1)
        queries, task_keys, task_values = self.task_qkv(self.attention_norm(task_states)).split(self.d_model, dim=-1)
        keys = torch.cat([task_keys, component_keys], dim=1)
        values = torch.cat([task_values, component_values], dim=1)
        task_states = task_states + self.attention_out(self._attend(queries, keys, values))
        return task_states + self.ffn(self.ffn_norm(task_states))

    def _attend(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Multi-head attention of [B, T, d] queries over [B, S, d] keys and values.

        Sequences are a handful of tokens, where per-row matrix products are slow; products are formed
        by broadcasting and summed per head with one small matrix product instead."""
        scores = (queries.unsqueeze(2) * keys.unsqueeze(1)) @ self.head_sum * self.scale  # [B, T, S, heads]
        weights = torch.softmax(scores, dim=2) @ self.head_sum.T  # each channel takes its head's weight
        return (weights * values.unsqueeze(1)).sum(2)


class Adapter(nn.Module):
    """What a task's fused state adds to one component output (adaptive strategies): zero at the start, and
    in units of that output's spread (see ADAPTER_STEP), so that a step of the optimiser moves every component
    alike, whether its values are embeddings of 0.01 or activations of 100."""

    scale: torch.Tensor  # a buffer (register_buffer), declared for the type checker

    def __init__(self, d_model: int, width: int) -> None:
        super().__init__()
        self.linear = _zero_linear(d_model, width)
        self.register_buffer("scale", torch.ones(width))

    def forward(self, task_state: torch.Tensor) -> torch.Tensor:
        return self.linear(task_state) * self.scale

    @torch.no_grad()
    def calibrate(self, std: torch.Tensor) -> None:
        self.scale.copy_(std.clamp_min(1e-6) * ADAPTER_STEP)


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
        for t in range(len(layout.tasks)):
            flags = [layout.sources[i].output_is_probability for i in layout.sources_of(t)]
            self.register_buffer(f"probability_sources_{t}", torch.tensor(flags), persistent=False)
        # Adapters feed a task's fused state back into its own sources' next component (adaptive strategies).
        self.adapters = nn.ModuleList(
            nn.ModuleList(Adapter(d, source.level_widths[level]) for source in layout.sources)
            for level in range(config.levels - 1)
        ) if adaptive else None  # fmt: skip

    def calibrate(self, statistics: list[list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """statistics[source][level] = (mean, std) of that component output over the training rows.

        Component outputs come on very different scales; folding their standardisation into the initial
        projections gives every token a comparable scale at no cost per step."""
        for source_index, per_level in enumerate(statistics):
            for level, (mean, std) in enumerate(per_level):
                self.level(level).components.calibrate(source_index, mean, std)
                if self.adapters is not None and level < len(self.adapters):
                    self.adapter(level, source_index).calibrate(std)

    def level(self, index: int) -> AKFLevel:
        """Fusion level `index` (nn.ModuleList hands out plain Modules)."""
        level = self.levels[index]
        assert isinstance(level, AKFLevel)
        return level

    def adapter(self, level: int, source_index: int) -> Adapter:
        """The adapter injecting into source `source_index` after `level` (adaptive strategies only)."""
        assert self.adapters is not None, "injections exist only in adaptive fusion"
        adapters_of_level = self.adapters[level]
        assert isinstance(adapters_of_level, nn.ModuleList)
        adapter = adapters_of_level[source_index]
        assert isinstance(adapter, Adapter)
        return adapter

    def initial_states(self, batch_size: int) -> torch.Tensor:
        return self.task_embedding.unsqueeze(0).expand(batch_size, -1, -1)

    def fuse_level(self, level: int, task_states: torch.Tensor, component_outputs: list[torch.Tensor]) -> torch.Tensor:
        """component_outputs: every source's [B, width] output at this level."""
        return self.levels[level](task_states, component_outputs)

    def injection(self, level: int, source_index: int, task_states: torch.Tensor) -> torch.Tensor:
        """What the adaptive strategies add to source `source_index`'s output at `level` before its next
        component runs."""
        task = self.layout.sources[source_index].task_index
        return self.adapter(level, source_index)(task_states[:, task])

    def task_outputs(self, task_states: torch.Tensor, source_outputs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Raw outputs per task: logits (binary, multiclass) or values (regression)."""
        outputs = {}
        for t, task in enumerate(self.layout.tasks):
            own = torch.stack([source_outputs[i] for i in self.layout.sources_of(t)], dim=-1)
            logits = _as_logits(task, own, getattr(self, f"probability_sources_{t}"))
            ensemble = (logits * self.source_mix[t]).sum(-1)
            tower = self.towers[t](task_states[:, t])
            outputs[task.name] = ensemble + (tower.squeeze(-1) if task.output_width == 1 else tower)
        return outputs

    def forward(self, component_outputs: list[list[torch.Tensor]], source_outputs: list[torch.Tensor]) -> dict:
        """component_outputs[source][level] is [B, width]; source_outputs[source] the source's own output."""
        states = self.initial_states(component_outputs[0][0].shape[0])
        for level in range(self.config.levels):
            states = self.fuse_level(level, states, [per_source[level] for per_source in component_outputs])
        return self.task_outputs(states, source_outputs)


def _tower(d_model: int, hidden: int, output_width: int) -> nn.Sequential:
    last = _zero_linear(hidden, output_width)
    return nn.Sequential(nn.Linear(d_model, hidden), nn.ReLU(), last)


def _zero_linear(in_width: int, out_width: int) -> nn.Linear:
    layer = nn.Linear(in_width, out_width)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def _as_logits(task: Task, outputs: torch.Tensor, is_probability: torch.Tensor) -> torch.Tensor:
    """Source outputs stacked on the last axis ([B, n] or [B, C, n]) in the space the fused head adds
    in: logits for classification (probability outputs converted), values for regression."""
    if task.type == TaskType.REGRESSION or not bool(is_probability.any()):
        return outputs
    if task.type == TaskType.BINARY:
        p = outputs.clamp(_PROBABILITY_FLOOR, 1 - _PROBABILITY_FLOOR)
        return torch.where(is_probability, torch.log(p) - torch.log1p(-p), outputs)
    return torch.where(is_probability, torch.log(outputs.clamp_min(_PROBABILITY_FLOOR)), outputs)
