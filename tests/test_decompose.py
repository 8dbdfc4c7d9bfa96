"""Automatic decomposition: every zoo model through both exporters, and a scikit-learn MLP, split into a
stem, body components (nested where branches run in parallel) and a head, from the graph alone."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier

from fusion.data.census import CensusData
from fusion.decompose import Role, decompose, format_tree
from fusion.intake import LoadedModel, load_model
from fusion.intake.files import load_model_file
from fusion.zoo import build_single_task_model, export_onnx

EXPORTERS = ["dynamo", "legacy"]
PARALLEL_FAMILIES = {"dcn", "deepfm", "wide_deep"}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("family", ["mlp", "dcn", "deepfm", "wide_deep"])
def test_every_zoo_model_decomposes(zoo_models: dict, family: str, exporter: str) -> None:
    loaded: LoadedModel = zoo_models[family, exporter]
    decomposition = decompose(loaded.model)

    roles = [component.role for component in decomposition.components]
    assert roles[0] == Role.STEM and roles[-1] == Role.HEAD and Role.BODY in roles
    stem = decomposition.stem
    assert stem.op_types.get("Gather", 0) >= 1, "the stem holds the embedding lookup"
    assert len(stem.inputs) == len(loaded.signature.inputs)
    assert decomposition.head.outputs == [loaded.signature.output_name]
    # Two hidden blocks (16, 8) in every family's deep part.
    assert decomposition.body_leaf_count() >= 2
    assert any(c.parallel for c in decomposition.body) == (family in PARALLEL_FAMILIES)
    for component in decomposition.all_components():
        assert component.op_types and component.outputs and component.inputs
    assert sum(c.parameter_count for c in decomposition.components) >= decomposition.parameter_count
    assert len(decomposition.spine) >= 3


def test_parallel_branches_nest_their_own_blocks(zoo_models: dict) -> None:
    decomposition = decompose(zoo_models["dcn", "legacy"].model)
    (parallel,) = [c for c in decomposition.body if c.parallel]
    branches = [c for c in parallel.children if c.role == Role.BRANCH]
    assert len(branches) == 2, "cross network beside deep network"
    deep = max(branches, key=lambda branch: len(branch.children))
    assert [child.role for child in deep.children] == [Role.BLOCK, Role.BLOCK]
    assert [op for op in deep.children[0].op_types if op in {"Gemm", "MatMul"}]


@pytest.mark.parametrize("hidden", [(8,), (16, 8, 8), (32, 16, 8, 8, 4)])
def test_k_hidden_blocks_give_at_least_k_body_components(census_small: CensusData, tmp_path, hidden) -> None:
    task = census_small.tasks[0]
    for family in ("mlp", "dcn", "wide_deep"):
        model = build_single_task_model(family, census_small.schema, task, hidden=hidden)
        path = export_onnx(model, census_small.schema, task, tmp_path / f"{family}.onnx", dynamo=False)
        assert decompose(load_model_file(path).model).body_leaf_count() >= len(hidden), family


def test_mlp_blocks_are_the_top_level_body(zoo_models: dict) -> None:
    decomposition = decompose(zoo_models["mlp", "dynamo"].model)
    assert [c.name for c in decomposition.components] == ["stem", "body1", "body2", "head"]
    assert [c.output_shapes[0][1] for c in decomposition.body] == [16, 8]


def test_scikit_learn_mlp_decomposes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    classifier = MLPClassifier(hidden_layer_sizes=(12, 8, 4), max_iter=1000, random_state=0).fit(x, y)
    converted = to_onnx(classifier, x[:1], options={id(classifier): {"zipmap": False}}, target_opset=17)
    loaded = load_model(converted.SerializeToString())

    decomposition = decompose(loaded.model)
    assert [c.role for c in decomposition.body] == [Role.BODY] * 3
    assert decomposition.head.role == Role.HEAD
    assert [c.output_shapes[0][1] for c in decomposition.body] == [12, 8, 4]


def test_tree_lists_every_component_with_shapes_and_parameters(zoo_models: dict) -> None:
    decomposition = decompose(zoo_models["wide_deep", "dynamo"].model)
    tree = format_tree(decomposition, "wide_deep")
    for component in decomposition.all_components():
        assert component.name in tree
    assert "parallel" in tree and "params" in tree and "[batch," in tree


def test_shape_side_paths_do_not_hide_cuts() -> None:
    """A Reshape whose target shape is computed from the input (Shape -> Gather -> Concat) still leaves
    the body's tensors as cuts."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first = torch.nn.Linear(4, 6)
            self.second = torch.nn.Linear(6, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            hidden = torch.relu(self.first(x)).reshape(x.shape[0], -1)
            return torch.sigmoid(self.second(hidden)).reshape(x.shape[0])

    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Net(), (torch.rand(3, 4),), buffer, dynamo=False, input_names=["x"], output_names=["p"],
            dynamic_axes={"x": {0: "n"}, "p": {0: "n"}}, opset_version=17,
        )  # fmt: skip
    model = onnx.load_from_string(buffer.getvalue())
    assert any(node.op_type == "Shape" for node in model.graph.node)
    decomposition = decompose(model)
    assert len(decomposition.body) == 1 and decomposition.head.role == Role.HEAD
