"""The AKF head written to ONNX (fusion/akf/head_graph.py) against the PyTorch network it folds, with every
weight random (the towers' zero-initialised last layers and the adapters included, so that nothing the
builder folds hides behind a zero), for each task type, probability and logit sources, and the injections of
the adaptive strategies."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fusion.akf.head_graph import build_head
from fusion.akf.model import AKFConfig, AKFusion, FusionLayout, SourceSlot
from fusion.akf.pipeline import EXPORT_TOLERANCE
from fusion.akf.sources import LevelPlan
from fusion.losses import to_prediction
from fusion.spec import Strategy
from fusion.tasks import Task, TaskType

TASKS = (
    Task("click", TaskType.BINARY, "click"),
    Task("spend", TaskType.REGRESSION, "spend"),
    Task("segment", TaskType.MULTICLASS, "segment", num_classes=4),
)
SOURCES = (  # two per task, one answering probabilities where the task has them
    SourceSlot("click_a", 0, (12, 7, 5), output_is_probability=True),
    SourceSlot("click_b", 0, (9, 9, 3), output_is_probability=False),
    SourceSlot("spend_a", 1, (6, 4, 1), output_is_probability=False),
    SourceSlot("segment_a", 2, (10, 8, 8), output_is_probability=True),
    SourceSlot("segment_b", 2, (5, 5, 6), output_is_probability=False),
)
ROWS = 37


def _fusion(adaptive: bool) -> AKFusion:
    torch.manual_seed(0)
    fusion = AKFusion(FusionLayout(TASKS, SOURCES), AKFConfig(d_model=8, heads=2, levels=3, tower_hidden=6), adaptive)
    with torch.no_grad():
        for parameter in fusion.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
        if fusion.adapters is not None:
            for per_level in fusion.adapters:
                for adapter in per_level:
                    adapter.scale.copy_(torch.rand_like(adapter.scale) + 0.5)
    return fusion.eval()


def _inputs(generator: torch.Generator) -> tuple[list[list[torch.Tensor]], list[torch.Tensor]]:
    components = [[torch.randn(ROWS, width, generator=generator) * 3 for width in s.level_widths] for s in SOURCES]
    outputs = []
    for source in SOURCES:
        task = TASKS[source.task_index]
        shape = (ROWS,) if task.output_width == 1 else (ROWS, task.output_width)
        if not source.output_is_probability:
            outputs.append(torch.randn(shape, generator=generator) * 2)
        elif task.type == TaskType.BINARY:
            outputs.append(torch.rand(shape, generator=generator))
        else:
            outputs.append(torch.softmax(torch.randn(shape, generator=generator), dim=-1))
    return components, outputs


@pytest.mark.parametrize("adaptive", [False, True], ids=["frozen", "adaptive"])
def test_head_graph_answers_as_the_network(adaptive: bool) -> None:
    fusion = _fusion(adaptive)
    # Every level reads another tensor of each source, so every source gets an injection after each level.
    plans = [LevelPlan(tuple(f"t{level}" for level in range(3)), s.level_widths) for s in SOURCES]
    levels = range(fusion.config.levels)
    input_names = [f"c{i}_{level}" for i in range(len(SOURCES)) for level in levels]
    input_names += [f"out{i}" for i in range(len(SOURCES))]
    injections = [f"inject{i}_{level}" for level in range(1, 3) for i in range(len(SOURCES))] if adaptive else []
    output_names = [task.name for task in TASKS] + injections
    model = build_head(fusion, list(TASKS), plans, input_names, output_names, opset=17)
    onnx.checker.check_model(model, full_check=True)

    components, outputs = _inputs(torch.Generator().manual_seed(1))
    tensors = [tensor for per_source in components for tensor in per_source] + outputs
    feed = {name: tensor.numpy() for name, tensor in zip(input_names, tensors, strict=True)}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip(output_names, session.run(None, feed), strict=True))
    with torch.no_grad():
        raw = fusion(components, outputs)
        states = fusion.initial_states(ROWS)
        expected_injections = {}
        for level in levels:
            if level > 0 and adaptive:
                for i in range(len(SOURCES)):
                    expected_injections[f"inject{i}_{level}"] = fusion.injection(level - 1, i, states)
            states = fusion.fuse_level(level, states, [per_source[level] for per_source in components])
    for task in TASKS:
        expected = to_prediction(task, raw[task.name]).numpy()
        assert got[task.name].shape == expected.shape
        tolerance = EXPORT_TOLERANCE[Strategy.FROZEN]
        np.testing.assert_allclose(got[task.name], expected, atol=tolerance, rtol=tolerance)
    assert set(expected_injections) == set(injections)
    for name, expected in expected_injections.items():  # raw activations, some near 10: float32 rounding shows
        tolerance = EXPORT_TOLERANCE[Strategy.ADAPTIVE]
        np.testing.assert_allclose(got[name], expected.numpy(), atol=tolerance, rtol=tolerance)
