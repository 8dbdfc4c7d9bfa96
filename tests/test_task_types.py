"""Fusion beyond binary tasks: regression and multiclass tasks, partial labels, and a scikit-learn
model whose single [N, k] input is fed from k data columns."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd
import pytest
import torch
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier

from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.intake import load_model
from fusion.intake.files import load_model_file
from fusion.onnx_runtime import create_session, run_session
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model
from service.client import schemas as client_schemas

SCHEMA = FeatureSchema(categorical=(CategoricalFeature("shop", 10), CategoricalFeature("tier", 4)), dense=("x", "z"))
TASKS = [
    Task("spend", TaskType.REGRESSION, "spend"),
    Task("segment", TaskType.MULTICLASS, "segment", num_classes=3),
    Task("churn", TaskType.BINARY, "churn"),
]
CONFIG = TrainConfig(batch_size=256, learning_rate=3e-3, max_epochs=3, patience=2, device="cpu")


def synthetic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "shop": rng.integers(0, 10, rows),
            "tier": rng.integers(0, 4, rows),
            "x": rng.normal(size=rows).astype(np.float32),
            "z": rng.normal(size=rows).astype(np.float32),
        }
    )
    frame["spend"] = (2 * frame.x - frame.z + 0.3 * frame.tier + rng.normal(0, 0.3, rows)).astype(np.float32)
    frame["segment"] = ((frame.shop % 3 + (frame.x > 0.5)) % 3).astype(np.float32)
    frame["churn"] = ((frame.x + frame.z + rng.normal(0, 0.5, rows)) > 0).astype(np.float32)
    frame.loc[frame.index[::3], "segment"] = np.nan  # a third of the rows lack this label
    return frame


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[FusionSource], FusionData]:
    folder = tmp_path_factory.mktemp("types")
    data = FusionData(synthetic(3000, 0), synthetic(1000, 1), synthetic(1000, 2))
    sources = []
    for family, task, columns in [
        ("mlp", TASKS[0], SCHEMA.input_names),
        ("mlp", TASKS[1], SCHEMA.input_names),
        ("wide_deep", TASKS[1], ["shop", "x"]),  # a model that reads only some of the columns
        ("dcn", TASKS[2], SCHEMA.input_names),
    ]:
        torch.manual_seed(0)
        schema = SCHEMA.subset(columns)
        model = build_single_task_model(family, schema, task, hidden=(16, 8))
        train_model(model, [task], data.train.dropna(subset=[task.label]), data.validation.dropna(subset=[task.label]),
                    schema, CONFIG)  # fmt: skip
        path = export_onnx(model, schema, task, folder / f"{task.name}_{family}.onnx", dynamo=False)
        sources.append(FusionSource(f"{task.name}_{family}", task.name, load_model_file(path)))
    classifier = MLPClassifier(hidden_layer_sizes=(8, 4), max_iter=500, random_state=0)
    features = data.train[["x", "z"]].to_numpy(np.float32)
    classifier.fit(features, data.train.churn.to_numpy())
    converted = to_onnx(classifier, features[:1], options={id(classifier): {"zipmap": False}}, target_opset=17)
    sources.append(FusionSource("churn_sklearn", "churn", load_model(converted.SerializeToString()), {"X": ("x", "z")}))
    return sources, data


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["frozen", "adaptive"])
def test_regression_multiclass_and_binary_fuse(setup, strategy: str) -> None:
    sources, data = setup
    settings = FusionSettings(strategy=strategy, training=TrainConfig(batch_size=256, max_epochs=2, device="cpu"))
    result = fuse(TASKS, sources, data, settings)

    metrics = {task.task: task for task in result.report.tasks}
    assert metrics["spend"].metric == "neg_rmse" and metrics["segment"].metric == "accuracy"
    assert metrics["churn"].metric == "auc" and set(metrics["churn"].sources) == {"churn_dcn", "churn_sklearn"}
    assert [len(s.signature.inputs) for s in sources] == [4, 4, 2, 4, 1]
    for task in result.report.tasks:
        best = max(score.validation for score in task.sources.values())
        assert task.exported.validation >= best

    session = create_session(result.model)
    feed = {"X": data.test[["x", "z"]].to_numpy(np.float32)}
    feed.update({name: data.test[name].to_numpy(np.int64) for name in ("shop", "tier")})
    feed.update({name: data.test[name].to_numpy(np.float32) for name in ("x", "z")})
    outputs = run_session(session, {v.name: feed[v.name] for v in session.get_inputs()})
    assert outputs["spend"].shape == (1000,)
    assert outputs["segment"].shape == (1000, 3)
    np.testing.assert_allclose(outputs["segment"].sum(axis=1), 1.0, atol=1e-5)
    assert ((outputs["churn"] >= 0) & (outputs["churn"] <= 1)).all()


def test_the_client_names_the_engines_task_types() -> None:
    """The client, which installs without the engine, keeps its own Literal of them."""
    assert get_args(client_schemas.TaskType) == tuple(task_type.value for task_type in TaskType)
