"""A classic source (tree ensemble, linear model) inside the adaptive strategies' model.

Its operators (ai.onnx.ml) have no PyTorch counterpart and nothing to differentiate: ONNX Runtime computes
its stage groups and output from the batch's input columns, outside autograd, the same numbers the frozen
strategy caches. Nothing is injected into it and nothing of it trains, while the neural sources beside it
adapt (and, under `finetune`, train).
"""

from __future__ import annotations

import torch
from torch import nn

from fusion.akf.components import ComponentRunner
from fusion.akf.sources import FusionSource, LevelPlan
from fusion.onnx_runtime import run_session

Environment = dict[str, torch.Tensor]


class RuntimeStages(nn.Module):
    def __init__(self, source: FusionSource, plan: LevelPlan) -> None:
        super().__init__()
        self.input_names = [spec.name for spec in source.signature.inputs]
        self.level_tensors = list(plan.tensors)
        self.output_name = source.signature.output_name
        self._wanted = list(dict.fromkeys([*self.level_tensors, self.output_name]))
        self._runner = ComponentRunner(source, plan)
        """The frozen strategy's runner: its session, made on first use, exposes the same tensors."""

    def injects_before(self, level: int) -> bool:
        return False

    def run_level(self, level: int, env: Environment) -> Environment:
        """Every level's tensor and the output, computed together when the first level asks."""
        if self.level_tensors[level] in env:
            return env
        first = env[self.input_names[0]]
        feed = {name: env[name].detach().cpu().numpy() for name in self.input_names}
        results = run_session(self._runner.session, feed, self._wanted)
        return env | {name: torch.from_numpy(results[name]).to(first.device) for name in self._wanted}

    def run_output(self, env: Environment) -> Environment:
        return self.run_level(0, env)
