"""Components as PyTorch modules compute what ONNX Runtime computes on the same subgraph."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx.utils import Extractor

from fusion.akf.sources import FusionSource
from fusion.data.census import CensusData
from fusion.decompose import decompose
from fusion.onnx_torch import OnnxGraphModule

TOLERANCE = 1e-5


@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
@pytest.mark.parametrize("family", ["mlp", "dcn", "deepfm", "wide_deep"])
def test_every_component_matches_onnx_runtime(zoo_models: dict, census_small: CensusData, family, exporter) -> None:
    loaded = zoo_models[family, exporter]
    model = loaded.model
    source = FusionSource(name=family, task="income", loaded=loaded)
    rows = census_small.validation.head(64)
    inputs = {name: torch.from_numpy(values) for name, values in source.feed(rows).items()}
    graph = OnnxGraphModule(model)
    everything = graph.run_nodes(range(len(model.graph.node)), inputs)  # every tensor, to feed components with

    extractor = Extractor(onnx.shape_inference.infer_shapes(model))
    for component in decompose(model).all_components():
        subgraph = extractor.extract_model(component.inputs, component.outputs)
        session = ort.InferenceSession(subgraph.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {name: everything[name].numpy() for name in component.inputs}
        expected = session.run(component.outputs, feed)

        module = graph.component(component.node_indices, component.inputs, component.outputs)
        actual = module(*(everything[name] for name in component.inputs))
        for name, want, got in zip(component.outputs, expected, actual, strict=True):
            difference = np.max(np.abs(want - got.detach().numpy()))
            assert difference <= TOLERANCE, f"{component.name} output {name}: max abs diff {difference:.2e}"


def test_components_are_differentiable(zoo_models: dict, census_small: CensusData) -> None:
    loaded = zoo_models["dcn", "dynamo"]
    graph = OnnxGraphModule(loaded.model)
    graph.set_trainable(True)
    body = decompose(loaded.model).body[0]
    source = FusionSource(name="dcn", task="income", loaded=loaded)
    inputs = {name: torch.from_numpy(v) for name, v in source.feed(census_small.validation.head(32)).items()}
    env = graph.run_nodes(range(len(loaded.model.graph.node)), inputs)
    entry = env[body.inputs[0]].detach().requires_grad_(True)
    (output,) = graph.component(body.node_indices, body.inputs, body.outputs)(entry)
    output.sum().backward()
    assert entry.grad is not None and entry.grad.abs().sum() > 0
    trained = [p for p in graph.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(trained) >= 4, "the cross and deep layers' weights receive gradients"


def test_extracted_components_are_valid_models(zoo_models: dict) -> None:
    model = zoo_models["wide_deep", "legacy"].model
    extractor = Extractor(onnx.shape_inference.infer_shapes(model))
    for component in decompose(model).components:
        onnx.checker.check_model(extractor.extract_model(component.inputs, component.outputs))
