"""From-scratch multi-task baselines: the hand-designed models that fusion must beat.

Shared-Bottom (one shared MLP, a tower per task), MMoE (Ma et al. 2018: shared experts, a softmax
gate per task) and PLE (Tang et al. 2020: stacked extraction layers of shared and task-specific
experts). All share the single-task models' stem and contract: `forward(inputs)` returns one raw
output per task.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.data.tensor_tables import TensorTable
from fusion.tasks import Task
from fusion.zoo.layers import MLP, FeatureStem, Tower


def _check_tasks(tasks: list[Task]) -> None:
    names = [task.name for task in tasks]
    if not names:
        raise ValueError("a multi-task model needs at least one task")
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")


class SharedBottomModel(nn.Module):
    """Stem -> one shared MLP -> a tower per task."""

    def __init__(
        self,
        schema: FeatureSchema,
        tasks: list[Task],
        *,
        bottom: tuple[int, ...] = (128, 64),
        tower: tuple[int, ...] = (32,),
        embedding_dim: int = 4,
    ) -> None:
        super().__init__()
        _check_tasks(tasks)
        self.schema, self.tasks = schema, list(tasks)
        self.stem = FeatureStem(schema, embedding_dim)
        self.bottom = MLP(self.stem.width, bottom)
        self.towers = nn.ModuleDict({task.name: Tower(self.bottom.out_width, task, tower) for task in tasks})

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        shared = self.bottom(self.stem(inputs))
        return {name: tower(shared) for name, tower in self.towers.items()}


def _mix(experts: list[torch.Tensor], gate_logits: torch.Tensor) -> torch.Tensor:
    """Softmax-weighted sum of expert outputs: [N, E] gate logits over E tensors of [N, H] -> [N, H]."""
    weights = torch.softmax(gate_logits, dim=-1).unsqueeze(-1)
    return (torch.stack(experts, dim=1) * weights).sum(dim=1)


class MMoEModel(nn.Module):
    """Multi-gate Mixture-of-Experts: shared expert MLPs, mixed by one softmax gate per task."""

    def __init__(
        self,
        schema: FeatureSchema,
        tasks: list[Task],
        *,
        num_experts: int = 4,
        expert: tuple[int, ...] = (64, 32),
        tower: tuple[int, ...] = (16,),
        embedding_dim: int = 4,
    ) -> None:
        super().__init__()
        _check_tasks(tasks)
        if num_experts < 1 or not expert:
            raise ValueError("MMoE needs at least one expert (num_experts >= 1) of at least one layer")
        self.schema, self.tasks = schema, list(tasks)
        self.stem = FeatureStem(schema, embedding_dim)
        self.experts = nn.ModuleList(MLP(self.stem.width, expert) for _ in range(num_experts))
        width = expert[-1]
        self.gates = nn.ModuleDict({task.name: nn.Linear(self.stem.width, num_experts) for task in tasks})
        self.towers = nn.ModuleDict({task.name: Tower(width, task, tower) for task in tasks})

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        x = self.stem(inputs)
        experts = [expert(x) for expert in self.experts]
        return {name: tower(_mix(experts, self.gates[name](x))) for name, tower in self.towers.items()}


class ExtractionLayer(nn.Module):
    """One PLE extraction layer (a CGC): task-specific and shared experts, a gate per task and a shared gate.

    Task t's gate mixes t's own experts with the shared ones. The shared gate mixes every expert and
    feeds the next layer's shared experts; the last layer leaves it out, as nothing reads it.
    """

    def __init__(
        self,
        in_width: int,
        task_names: list[str],
        *,
        task_experts: int,
        shared_experts: int,
        expert: tuple[int, ...],
        with_shared_gate: bool,
    ) -> None:
        super().__init__()
        self.task_experts = nn.ModuleDict(
            {name: nn.ModuleList(MLP(in_width, expert) for _ in range(task_experts)) for name in task_names}
        )
        self.shared_experts = nn.ModuleList(MLP(in_width, expert) for _ in range(shared_experts))
        self.out_width = expert[-1]
        self.task_gates = nn.ModuleDict(
            {name: nn.Linear(in_width, task_experts + shared_experts) for name in task_names}
        )
        everyone = task_experts * len(task_names) + shared_experts
        self.shared_gate = nn.Linear(in_width, everyone) if with_shared_gate else None

    def forward(
        self, task_inputs: dict[str, torch.Tensor], shared_input: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        shared = [expert(shared_input) for expert in self.shared_experts]
        own = {name: [expert(task_inputs[name]) for expert in self._own_experts(name)] for name in self.task_experts}
        task_outputs = {
            name: _mix(own[name] + shared, gate(task_inputs[name])) for name, gate in self.task_gates.items()
        }
        if self.shared_gate is None:
            return task_outputs, None
        every_expert = [output for outputs in own.values() for output in outputs] + shared
        return task_outputs, _mix(every_expert, self.shared_gate(shared_input))

    def _own_experts(self, task_name: str) -> nn.ModuleList:
        """Task `task_name`'s own experts (nn.ModuleDict hands out plain Modules)."""
        experts = self.task_experts[task_name]
        assert isinstance(experts, nn.ModuleList)
        return experts


class PLEModel(nn.Module):
    """Progressive Layered Extraction: stacked extraction layers, then a tower per task."""

    def __init__(
        self,
        schema: FeatureSchema,
        tasks: list[Task],
        *,
        num_levels: int = 2,
        task_experts: int = 1,
        shared_experts: int = 2,
        expert: tuple[int, ...] = (64,),
        tower: tuple[int, ...] = (16,),
        embedding_dim: int = 4,
    ) -> None:
        super().__init__()
        _check_tasks(tasks)
        if num_levels < 1:
            raise ValueError("PLE needs at least one extraction layer (num_levels >= 1)")
        if task_experts + shared_experts < 1 or not expert:
            raise ValueError("PLE needs at least one expert per gate and at least one layer per expert")
        self.schema, self.tasks = schema, list(tasks)
        self.stem = FeatureStem(schema, embedding_dim)
        names = [task.name for task in tasks]
        layers = []
        width = self.stem.width
        for level in range(num_levels):
            layer = ExtractionLayer(
                width,
                names,
                task_experts=task_experts,
                shared_experts=shared_experts,
                expert=expert,
                with_shared_gate=level < num_levels - 1,
            )
            layers.append(layer)
            width = layer.out_width
        self.levels = nn.ModuleList(layers)
        self.towers = nn.ModuleDict({task.name: Tower(width, task, tower) for task in tasks})

    def forward(self, inputs: TensorTable) -> dict[str, torch.Tensor]:
        x = self.stem(inputs)
        task_states: dict[str, torch.Tensor] = {name: x for name in self.towers}
        shared_state: torch.Tensor | None = x
        for level in self.levels:
            assert shared_state is not None  # only the last level drops its shared state
            task_states, shared_state = level(task_states, shared_state)
        return {name: tower(task_states[name]) for name, tower in self.towers.items()}


MULTITASK_KINDS: dict[str, Callable[..., nn.Module]] = {
    "shared_bottom": SharedBottomModel,
    "mmoe": MMoEModel,
    "ple": PLEModel,
}


def build_multitask_model(kind: str, schema: FeatureSchema, tasks: list[Task], **hyper: object) -> nn.Module:
    """A fresh, untrained baseline of `kind`; `hyper` overrides that kind's default hyper-parameters."""
    if kind not in MULTITASK_KINDS:
        raise ValueError(f"unknown multi-task model kind '{kind}'; choose one of: {', '.join(MULTITASK_KINDS)}")
    return MULTITASK_KINDS[kind](schema, tasks, **hyper)
