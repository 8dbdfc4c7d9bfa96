"""Classic models as uploads: tree ensembles (LightGBM, XGBoost, scikit-learn), linear pipelines, a
regressor and multiclass models go through intake as their converters write them, answer what their
library answers, and split into stage groups whose partial raw scores add up to the model's raw score."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from fusion.classic import find_estimator, with_stages
from fusion.decompose import decompose, format_tree
from fusion.intake import LoadedModel, ModelRejected, load_model
from fusion.onnx_runtime import run_model
from tests.helpers.classic_models import (
    KINDS,
    TREE_INPUT,
    ClassicModel,
    feature_matrix,
    onnx_model,
    tabular_frame,
    train_classic,
    with_zipmap,
)

FRAME = tabular_frame(400, seed=0)
ROWS = feature_matrix(tabular_frame(200, seed=1))


@functools.cache
def trained(kind: str) -> ClassicModel:
    return train_classic(kind, FRAME)


def rejected(model: onnx.ModelProto | bytes, *phrases: str) -> str:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    with pytest.raises(ModelRejected) as caught:
        load_model(data)
    message = str(caught.value)
    for phrase in phrases:
        assert phrase in message, message
    return message


@pytest.mark.parametrize("kind", KINDS)
def test_accepted_and_answers_what_its_library_answers(kind: str) -> None:
    model = trained(kind)
    loaded = load_model(model.onnx_bytes)
    signature = loaded.signature
    (spec,) = signature.inputs
    assert (spec.name, spec.kind, spec.dtype, spec.width, spec.rank) == (TREE_INPUT, "dense", "float32", 5, 2)
    assert signature.output_width == (3 if model.task == "multiclass" else 1)
    assert signature.output_is_probability == (model.task != "regression")
    assert signature.opset >= 13
    score = run_model(loaded.model, {TREE_INPUT: ROWS})[signature.output_name]
    np.testing.assert_allclose(score, model.predict(ROWS), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("groups", [1, 3])
def test_stage_groups_add_up_to_the_raw_score(kind: str, groups: int) -> None:
    model = trained(kind)
    staged, planned = with_stages(load_model(model.onnx_bytes).model, groups)
    if model.trees:
        assert [group.trees for group in planned] == _even_split(model.trees, groups)
    else:
        assert len(planned) == 1, "a linear model is one component: its score"
    results = run_model(staged, {TREE_INPUT: ROWS}, extra_outputs=[group.tensor for group in planned])
    partial = [results[group.tensor] for group in planned]
    assert all(values.shape == partial[0].shape for values in partial)
    np.testing.assert_allclose(sum(partial), model.raw_score(ROWS), atol=1e-5)
    if groups > 1 and model.trees:
        assert not np.allclose(partial[0], partial[-1]), "each group holds its own trees"


def _even_split(trees: int, groups: int) -> list[int]:
    bounds = np.linspace(0, trees, min(groups, trees) + 1).round().astype(int)
    return list(np.diff(bounds))


def test_decomposition_shows_stem_stage_groups_with_tree_counts_and_head() -> None:
    loaded = load_model(trained("lightgbm").onnx_bytes)
    decomposition = decompose(loaded.model)
    roles = [(c.name, c.role.value, c.trees) for c in decomposition.components]
    assert roles == [("stage1", "body", 2), ("stage2", "body", 3), ("stage3", "body", 2), ("head", "head", None)]
    assert decomposition.body_leaf_count() == 3
    tree = format_tree(decomposition, "lgb")
    assert "stage2 [features -> fusebox_stage2_trees2to4" in tree and "3 trees" in tree
    assert decomposition.parameter_count > 0


def test_pipeline_is_its_preprocessing_stem_then_one_linear_score() -> None:
    loaded = load_model(trained("scaled_logistic_regression").onnx_bytes)
    decomposition = decompose(loaded.model)
    assert [(c.name, c.role.value) for c in decomposition.components] == [
        ("stem", "stem"),
        ("linear_score", "body"),
        ("head", "head"),
    ]
    assert decomposition.stem is not None and decomposition.stem.op_types == {"Scaler": 1}
    assert len(decomposition.spine) == 1


def test_decomposition_of_a_staged_graph_names_its_own_stage_nodes() -> None:
    staged, planned = with_stages(load_model(trained("xgboost").onnx_bytes).model, 2)
    decomposition = decompose(staged)
    assert decomposition.spine == [group.tensor for group in planned]
    assert all(len(component.node_indices) == 1 for component in decomposition.body)
    again, same = with_stages(staged, 5)
    assert same == planned and len(again.graph.node) == len(staged.graph.node), "stages are added once"


def test_converters_old_or_missing_standard_opsets_are_lifted() -> None:
    lightgbm, xgboost = onnx_model(trained("lightgbm")), onnx_model(trained("xgboost"))
    assert next(o.version for o in lightgbm.opset_import if o.domain == "") == 9
    assert not any(o.domain == "" for o in xgboost.opset_import)
    for model in (lightgbm, xgboost):
        loaded = load_model(model.SerializeToString())
        imports = {o.domain: o.version for o in loaded.model.opset_import}
        assert imports[""] == 13 and imports["ai.onnx.ml"] >= 1


def test_neural_models_still_need_a_supported_opset() -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N"])],
    )
    rejected(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)]), "opset 9", "between 13")


def test_zipmap_is_refused_with_the_export_option() -> None:
    rejected(with_zipmap(FRAME), "ZipMap", "export with zipmap=False")


def _estimator_attribute(model: onnx.ModelProto, name: str) -> onnx.AttributeProto:
    estimator = find_estimator(model)
    assert estimator is not None
    node = model.graph.node[estimator.position]
    return next(attr for attr in node.attribute if attr.name == name)


def test_tree_lists_of_different_lengths_are_refused() -> None:
    model = onnx_model(trained("gradient_boosting"))
    del _estimator_attribute(model, "nodes_values").floats[-1]
    rejected(model, "TreeEnsembleClassifier", "same, non-zero number of entries", "nodes_values")


def test_a_leaf_weight_on_a_branch_node_is_refused() -> None:
    model = onnx_model(trained("random_forest_regressor"))
    _estimator_attribute(model, "target_nodeids").ints[0] = 0  # node 0 is every tree's root
    rejected(model, "TreeEnsembleRegressor", "which is not a leaf")


def test_a_branch_to_a_missing_node_is_refused() -> None:
    model = onnx_model(trained("xgboost"))
    _estimator_attribute(model, "nodes_truenodeids").ints[0] = 999
    rejected(model, "points at node 999")


def test_linear_coefficients_that_do_not_split_into_rows_are_refused() -> None:
    model = onnx_model(trained("scaled_logistic_regression"))
    del _estimator_attribute(model, "coefficients").floats[-1]
    rejected(model, "LinearClassifier", "coefficients do not split")


def test_an_unsupported_classic_operator_is_named() -> None:
    model = onnx_model(trained("gradient_boosting"))
    node = model.graph.node[find_estimator(model).position]  # type: ignore[union-attr]
    node.op_type = "SVMClassifier"
    message = rejected(model, "SVMClassifier (domain ai.onnx.ml)", "TreeEnsembleClassifier")
    assert "LinearClassifier" in message


def test_a_loaded_classic_model_round_trips() -> None:
    loaded = load_model(trained("hist_gradient_boosting").onnx_bytes)
    again = load_model(loaded.to_bytes())
    assert isinstance(again, LoadedModel) and again.signature == loaded.signature


def tree_ensemble_v5(aggregate: int) -> onnx.ModelProto:
    """Four stumps in ai.onnx.ml 5's TreeEnsemble (nodes and leaves in separate arrays), by hand: the
    converters here still write the older operators. aggregate_function 0 averages, 1 sums."""
    stumps = 4
    weights = np.linspace(-1.0, 1.5, 2 * stumps, dtype=np.float32)
    node = helper.make_node(
        "TreeEnsemble",
        [TREE_INPUT],
        ["value"],
        domain="ai.onnx.ml",
        nodes_featureids=[i % 5 for i in range(stumps)],
        nodes_splits=onnx.numpy_helper.from_array(np.linspace(-0.5, 0.5, stumps).astype(np.float32)),
        nodes_modes=onnx.numpy_helper.from_array(np.zeros(stumps, dtype=np.uint8)),
        nodes_truenodeids=[2 * i for i in range(stumps)],
        nodes_falsenodeids=[2 * i + 1 for i in range(stumps)],
        nodes_trueleafs=[1] * stumps,
        nodes_falseleafs=[1] * stumps,
        leaf_targetids=[0] * (2 * stumps),
        leaf_weights=onnx.numpy_helper.from_array(weights),
        tree_roots=list(range(stumps)),
        n_targets=1,
        aggregate_function=aggregate,
        post_transform=0,
    )
    graph = helper.make_graph(
        [node],
        "v5",
        [helper.make_tensor_value_info(TREE_INPUT, onnx.TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("value", onnx.TensorProto.FLOAT, ["N", 1])],
    )
    imports = [helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    return helper.make_model(graph, opset_imports=imports, ir_version=10)


@pytest.mark.parametrize("aggregate", [0, 1])
def test_tree_ensemble_of_ml_opset_5_splits_into_stage_groups(aggregate: int) -> None:
    loaded = load_model(tree_ensemble_v5(aggregate).SerializeToString())
    assert loaded.signature.output_width == 1 and not loaded.signature.output_is_probability
    whole = run_model(loaded.model, {TREE_INPUT: ROWS})[loaded.signature.output_name]
    staged, planned = with_stages(loaded.model, 3)
    assert [group.trees for group in planned] == [1, 2, 1]
    results = run_model(staged, {TREE_INPUT: ROWS}, extra_outputs=[group.tensor for group in planned])
    np.testing.assert_allclose(sum(results[group.tensor] for group in planned).ravel(), whole, atol=1e-5)


def test_tree_ensemble_of_ml_opset_5_with_a_dangling_leaf_is_refused() -> None:
    model = tree_ensemble_v5(1)
    next(attr for attr in model.graph.node[0].attribute if attr.name == "nodes_falsenodeids").ints[0] = 50
    rejected(model, "TreeEnsemble", "points at leaf 50")


def test_fusebox_inspect_shows_the_stage_groups_with_their_trees(tmp_path: Path) -> None:
    path = tmp_path / "income_lightgbm.onnx"
    path.write_bytes(trained("lightgbm").onnx_bytes)
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "inspect", str(path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "features: dense float32 width 5" in done.stdout
    assert "stage1 [features -> fusebox_stage1_trees0to1 [N,1]] 2 trees" in done.stdout
    assert "3 trees" in done.stdout and "head [" in done.stdout and "TreeEnsembleClassifier" in done.stdout
