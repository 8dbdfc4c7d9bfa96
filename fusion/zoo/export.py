"""Export a trained zoo model as the ONNX file a user would upload: one input per column, one output.

The exported signature is what the rest of fusebox reads from any uploaded model: inputs named after
the schema's columns in `schema.input_names` order (categorical int64 [batch], dense float32
[batch]), a dynamic batch axis, and ONE output named after the task holding what the task answers
(probability, value or class probabilities), or the raw logits on request.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from fusion.data.schema import FeatureSchema
from fusion.losses import to_prediction
from fusion.tasks import Task

LEGACY_OPSET = 17
_SAMPLE_ROWS = 2
"""Rows in the tracing sample: not 1, which the exporters would specialise as a fixed batch of one."""


class ColumnsToTaskOutput(nn.Module):
    """Adapts a zoo model to the exported signature: positional column tensors in, one task's output out."""

    def __init__(self, model: nn.Module, schema: FeatureSchema, task: Task, probability: bool) -> None:
        super().__init__()
        self.model = model
        self.input_names = schema.input_names
        self.task = task
        self.probability = probability

    def forward(self, *columns: torch.Tensor) -> torch.Tensor:
        raw = self.model(dict(zip(self.input_names, columns, strict=True)))[self.task.name]
        return to_prediction(self.task, raw) if self.probability else raw


def sample_inputs(schema: FeatureSchema, rows: int = _SAMPLE_ROWS) -> tuple[torch.Tensor, ...]:
    """Valid inputs in `schema.input_names` order: ids 0, 1, ... within each cardinality, dense in [0, 1]."""
    ids = [torch.arange(rows, dtype=torch.int64) % feature.cardinality for feature in schema.categorical]
    dense = [torch.linspace(0.0, 1.0, rows) for _ in schema.dense]
    return (*ids, *dense)


def export_onnx(
    model: nn.Module,
    schema: FeatureSchema,
    task: Task,
    path: str | Path,
    *,
    dynamo: bool = True,
    output: Literal["probability", "logit"] = "probability",
) -> Path:
    """Write `model`'s answer for `task` to `path` as ONNX and return the path.

    `dynamo=True` uses the torch.export-based exporter (its default opset; it stores the weights beside
    the graph in `<path>.data`); `dynamo=False` uses the legacy TorchScript exporter at opset 17, which
    writes one self-contained file. The model is copied to the CPU in eval mode, so the caller's model
    is left as it was.
    """
    if output not in ("probability", "logit"):
        raise ValueError(f"output must be 'probability' or 'logit', not {output!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ColumnsToTaskOutput(copy.deepcopy(model).cpu(), schema, task, output == "probability").eval()
    names = schema.input_names
    sample = sample_inputs(schema)
    if dynamo:
        batch = torch.export.Dim("batch")
        with warnings.catch_warnings():
            # Every input shares the one batch dim; the exporter warns once per input that it keeps one name.
            warnings.filterwarnings("ignore", message=r"# The axis name: batch will not be used")
            torch.onnx.export(
                wrapper,
                sample,
                str(path),
                dynamo=True,
                input_names=names,
                output_names=[task.name],
                dynamic_shapes=(tuple({0: batch} for _ in names),),
                verbose=False,
            )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                wrapper,
                sample,
                str(path),
                dynamo=False,
                opset_version=LEGACY_OPSET,
                input_names=names,
                output_names=[task.name],
                dynamic_axes={name: {0: "batch"} for name in [*names, task.name]},
            )
    return path
