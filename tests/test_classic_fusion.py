"""Classic models fused with a neural model: every kind under `frozen`, trees beside a neural model under
`adaptive` and `finetune`; the export copies the tree graph unchanged, with its ai.onnx.ml opset import,
and answers what the trained model answers."""

from __future__ import annotations

import numpy as np
import onnx
import pandas as pd
import pytest

from fusion.akf.baselines import baseline_schema
from fusion.akf.pipeline import FusionData, FusionResult, FusionSettings, fuse
from fusion.akf.sources import FusionSource
from fusion.classic import find_estimator
from fusion.data.tables import as_table
from fusion.onnx_runtime import create_session, run_session
from fusion.training import TrainConfig
from tests.helpers.classic_models import KINDS, TASKS, classic_source, neural_source, tabular_frame, train_classic

pytestmark = pytest.mark.slow
QUICK = TrainConfig(batch_size=256, max_epochs=1, device="cpu")
TRAIN, VALIDATION, TEST = tabular_frame(600, 0), tabular_frame(200, 1), tabular_frame(200, 2)
DATA = FusionData(TRAIN, VALIDATION, TEST)


@pytest.fixture(scope="module")
def neural(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FusionSource]:
    folder = tmp_path_factory.mktemp("neural")
    return {task_type: neural_source(task_type, TRAIN, folder) for task_type in TASKS}


def run_exported(result: FusionResult, sources: list[FusionSource], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    feed: dict[str, np.ndarray] = {}
    for source in sources:
        feed.update(source.feed(frame))
    session = create_session(result.model)
    return run_session(session, {value.name: feed[value.name] for value in session.get_inputs()})


def estimator_node(model: onnx.ModelProto) -> onnx.NodeProto:
    estimator = find_estimator(model)
    assert estimator is not None
    return estimator.node


def assert_tree_graph_copied_unchanged(result: FusionResult, source: FusionSource) -> None:
    original = estimator_node(source.model)
    copies = [
        node for node in result.model.graph.node if node.op_type == original.op_type and node.domain == original.domain
    ]
    assert any(list(node.attribute) == list(original.attribute) for node in copies), "the estimator is copied as is"
    imports = {entry.domain: entry.version for entry in result.model.opset_import}
    assert imports["ai.onnx.ml"] >= next(e.version for e in source.model.opset_import if e.domain == "ai.onnx.ml")


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_fuses_with_a_neural_model_and_exports(kind: str, neural: dict[str, FusionSource]) -> None:
    classic = classic_source(train_classic(kind, TRAIN))
    task_type = classic_task_type(classic)
    sources = [neural[task_type], classic]
    result = fuse([TASKS[task_type]], sources, DATA, FusionSettings(training=QUICK))
    assert result.report.export_max_abs_diff <= 1e-5
    assert_tree_graph_copied_unchanged(result, classic)
    (task,) = result.report.tasks
    assert set(task.sources) == {neural[task_type].name, kind}
    outputs = run_exported(result, sources, TEST)
    expected_shape = (len(TEST), 3) if task_type == "multiclass" else (len(TEST),)
    assert outputs[TASKS[task_type].name].shape == expected_shape
    assert np.isfinite(outputs[TASKS[task_type].name]).all()


def classic_task_type(source: FusionSource) -> str:
    return next(task_type for task_type, task in TASKS.items() if task.name == source.task)


@pytest.mark.parametrize("strategy", ["adaptive", "finetune"])
def test_trees_stay_fixed_while_the_neural_source_adapts(strategy: str, neural: dict[str, FusionSource]) -> None:
    lightgbm = classic_source(train_classic("lightgbm", TRAIN))
    forest = classic_source(train_classic("random_forest_regressor", TRAIN))
    sources = [neural["binary"], lightgbm, forest]
    tasks = [TASKS["binary"], TASKS["regression"]]
    result = fuse(tasks, sources, DATA, FusionSettings(strategy=strategy, training=QUICK))
    assert result.report.export_max_abs_diff <= 1e-4
    for classic in (lightgbm, forest):
        assert_tree_graph_copied_unchanged(result, classic)
    outputs = run_exported(result, sources, TEST)
    assert all(np.isfinite(values).all() for values in outputs.values())
    exported = {tensor.name: tensor for tensor in result.model.graph.initializer}
    neural_weights = [t for t in neural["binary"].model.graph.initializer if t.name.endswith("weight")]
    changed = [
        not np.array_equal(onnx.numpy_helper.to_array(t), onnx.numpy_helper.to_array(exported[f"s0/{t.name}"]))
        for t in neural_weights
        if f"s0/{t.name}" in exported
    ]
    assert changed and any(changed) == (strategy == "finetune"), "only finetune trains the neural source"


def test_a_classic_source_alone_per_task_fuses() -> None:
    """Tasks whose only sources are classic models: no neural model, no PyTorch source graph at all."""
    sources = [
        classic_source(train_classic("xgboost", TRAIN)),
        classic_source(train_classic("gradient_boosting_multiclass", TRAIN)),
    ]
    tasks = [TASKS["binary"], TASKS["multiclass"]]
    result = fuse(tasks, sources, DATA, FusionSettings(strategy="adaptive", training=QUICK))
    outputs = run_exported(result, sources, TEST)
    assert outputs["kind"].shape == (len(TEST), 3)
    np.testing.assert_allclose(outputs["kind"].sum(axis=1), 1.0, atol=1e-5)


def test_baselines_read_the_jobs_columns_whatever_the_sources_input_tensors() -> None:
    """Regression: sources reading [N, k] tensors through input_columns left MMoE/PLE with no feature at all
    ("the feature schema is empty"), and the crash lost the trained fusion."""
    sources = [
        classic_source(train_classic("lightgbm", TRAIN)),
        classic_source(train_classic("random_forest_regressor", TRAIN)),
    ]
    schema = baseline_schema(sources, {"train": as_table(TRAIN)})
    assert [(f.name, f.cardinality) for f in schema.categorical] == [("cat_a", 6), ("cat_b", 3)]
    assert schema.dense == ("x1", "x2", "x3")
    tasks = [TASKS["binary"], TASKS["regression"]]
    result = fuse(tasks, sources, DATA, FusionSettings(training=QUICK, baselines=("mmoe", "ple")))
    for task in result.report.tasks:
        assert set(task.baselines) == {"mmoe", "ple"}
        assert all(np.isfinite(score.validation) for score in task.baselines.values())
    assert result.report.baseline_failures == {}
    assert "baseline ple" in result.report.format_table()


def test_a_failing_baseline_leaves_the_fused_model_exported_and_says_why() -> None:
    sources = [classic_source(train_classic("xgboost", TRAIN))]
    settings = FusionSettings(training=QUICK, baselines=("mmoe", "not_a_baseline"))  # type: ignore[arg-type]
    result = fuse([TASKS["binary"]], sources, DATA, settings)
    assert set(result.report.baseline_failures) == {"not_a_baseline"}
    assert "not_a_baseline" in result.report.baseline_failures["not_a_baseline"]
    assert set(result.report.tasks[0].baselines) == {"mmoe"}
    assert any("baseline not_a_baseline failed" in note for note in result.report.notes)
    assert result.model.graph.output[0].name == "label"
    assert "baseline not_a_baseline failed" in result.report.format_table()
