"""The fused multi-task model under each training strategy.

- `frozen`: source components are fixed and their outputs precomputed (see cache.py); the model
  reads those outputs and trains only the AKF network. Fastest.
- `adaptive`: source components run inside the model (as PyTorch modules converted from their ONNX
  graphs), level by level; before the component of level l runs, a learned, zero-initialised
  projection of its task's fused state from level l-1 is added to its input. Weights stay frozen.
- `finetune`: adaptive, with the source components' weights trained too, at a lower learning rate.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from fusion.akf.component_path import SplitComponents
from fusion.akf.model import AKFusion
from fusion.akf.runtime_stages import RuntimeStages
from fusion.akf.sources import FusionSource, LevelPlan
from fusion.data.stream import Batch, ChunkSource, table_source
from fusion.data.tables import Chunk, Table
from fusion.data.tensor_tables import TensorTable, label_tensors
from fusion.graph import GraphView
from fusion.onnx_torch import OnnxGraphModule
from fusion.tasks import Task


def level_key(source_index: int, level: int) -> str:
    return f"source{source_index}.level{level}"


def output_key(source_index: int) -> str:
    return f"source{source_index}.output"


def frozen_source(components: SplitComponents, tasks: list[Task]) -> ChunkSource:
    """The frozen model's input rows, chunk by chunk: the sources' component outputs and own outputs,
    by key (stored, or computed from the chunk's input columns), with the tasks' labels."""
    labels = list(dict.fromkeys(task.label for task in tasks))
    table = components.table

    def load(chunk: Chunk) -> Batch:
        frame = table.read(chunk, list(dict.fromkeys([*components.columns, *labels])))
        features: TensorTable = {}
        for i, outputs in enumerate(components.read(chunk, frame)):
            for level, values in enumerate(outputs.levels):
                features[level_key(i, level)] = torch.from_numpy(values)  # a view: the shuffle copies it once
            features[output_key(i)] = torch.from_numpy(outputs.output)
        return features, label_tensors(frame, tasks)

    return ChunkSource(table.chunks, load)


def raw_source(sources: list[FusionSource], table: Table, tasks: list[Task]) -> ChunkSource:
    """The source models' input columns, chunk by chunk: what the adaptive strategies' model reads."""
    columns = list(dict.fromkeys(column for source in sources for column in source.columns))

    def features(frame: pd.DataFrame) -> TensorTable:
        inputs: TensorTable = {}
        for source in sources:
            for name, values in source.feed(frame).items():
                inputs.setdefault(name, torch.from_numpy(values))
        return inputs

    return table_source(table, columns, features, tasks)


class FrozenFusion(nn.Module):
    def __init__(self, fusion: AKFusion) -> None:
        super().__init__()
        self.fusion = fusion

    def forward(self, table: TensorTable) -> dict[str, torch.Tensor]:
        sources = range(len(self.fusion.layout.sources))
        levels = range(self.fusion.config.levels)
        return self.fusion(
            [[table[level_key(i, level)] for level in levels] for i in sources],
            [table[output_key(i)] for i in sources],
        )


class SourceStages(nn.Module):
    """One source model split into the node groups that run before each fusion level, and its head."""

    def __init__(self, source: FusionSource, plan: LevelPlan) -> None:
        super().__init__()
        self.graph = OnnxGraphModule(source.model)
        self.plan = plan
        self.input_names = [spec.name for spec in source.signature.inputs]
        self.level_tensors = list(plan.tensors)
        self.output_name = source.signature.output_name
        view = GraphView.of(source.model)
        done: set[int] = set()
        self.stages: list[list[int]] = []
        for tensor in [*self.level_tensors, self.output_name]:
            needed = view.all_ancestors([tensor]) - done
            self.stages.append(sorted(needed))
            done |= needed

    def injects_before(self, level: int) -> bool:
        """Level `level` receives an injection when a component lies between it and the level before."""
        return self.plan.injects_before(level)

    def run_level(self, level: int, env: TensorTable) -> TensorTable:
        return self.graph.run_nodes(self.stages[level], env)

    def run_output(self, env: TensorTable) -> TensorTable:
        return self.graph.run_nodes(self.stages[-1], env)


Stages = SourceStages | RuntimeStages


class AdaptiveFusion(nn.Module):
    def __init__(self, fusion: AKFusion, sources: list[FusionSource], plans: list[LevelPlan]) -> None:
        super().__init__()
        self.fusion = fusion
        self.sources = nn.ModuleList(
            RuntimeStages(s, p) if s.computed_by_runtime else SourceStages(s, p)
            for s, p in zip(sources, plans, strict=True)
        )

    @property
    def source_stages(self) -> list[Stages]:
        """Every source's stages, in source order (nn.ModuleList hands out plain Modules)."""
        stages_of_sources: list[Stages] = []
        for stages in self.sources:
            assert isinstance(stages, SourceStages | RuntimeStages)
            stages_of_sources.append(stages)
        return stages_of_sources

    @property
    def trainable_sources(self) -> dict[int, SourceStages]:
        """The neural sources by index: classic ones (RuntimeStages) never train."""
        return {i: stages for i, stages in enumerate(self.source_stages) if isinstance(stages, SourceStages)}

    def set_sources_trainable(self, trainable: bool) -> None:
        for stages in self.trainable_sources.values():
            stages.graph.set_trainable(trainable)

    def forward(self, table: TensorTable) -> dict[str, torch.Tensor]:
        source_stages = self.source_stages
        envs = [{name: table[name] for name in stages.input_names} for stages in source_stages]
        states = self.fusion.initial_states(next(iter(table.values())).shape[0])
        for level in range(self.fusion.config.levels):
            component_outputs = []
            for i, stages in enumerate(source_stages):
                if stages.injects_before(level):
                    previous = stages.level_tensors[level - 1]
                    value = envs[i][previous]
                    envs[i][previous] = value + self.fusion.injection(level - 1, i, states).reshape(value.shape)
                envs[i] = stages.run_level(level, envs[i])
                component_outputs.append(envs[i][stages.level_tensors[level]].flatten(1))
            states = self.fusion.fuse_level(level, states, component_outputs)
        source_outputs = []
        for i, stages in enumerate(source_stages):
            envs[i] = stages.run_output(envs[i])
            source_outputs.append(envs[i][stages.output_name])
        return self.fusion.task_outputs(states, source_outputs)
