"""The model zoo: each family learns Census-Income, exports to the ONNX signature, and keeps one stem cut."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from torch import nn

from fusion.data.census import CensusData
from fusion.data.schema import FeatureSchema
from fusion.losses import to_prediction
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig, TrainResult
from fusion.zoo import (
    MULTITASK_KINDS,
    SINGLE_TASK_FAMILIES,
    build_multitask_model,
    build_single_task_model,
    evaluate_model,
    export_onnx,
    frame_tensors,
    train_model,
)

FAST = TrainConfig(batch_size=256, learning_rate=3e-3, max_epochs=3, patience=2, device="cpu")
# Measured on census_small with FAST over seeds 0 and 1, every family and baseline: validation AUC
# income 0.924-0.933, never_married 0.9934-0.9936. A model that ignores its inputs scores 0.5; an MLP
# on three weak columns (sex, race, year) reaches 0.69 on income.
MIN_INCOME_AUC = 0.91
MIN_NEVER_MARRIED_AUC = 0.99
SUBSET = ["education", "sex", "age", "weeks_worked_in_year"]


def income(data: CensusData) -> Task:
    return next(task for task in data.tasks if task.name == "income")


def torch_answer(model: nn.Module, task: Task, features: dict[str, torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        return to_prediction(task, model.eval()(features)[task.name]).numpy()


def onnx_answer(path: Path, frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    features, _ = frame_tensors(frame, schema, [])
    return session.run(None, {name: tensor.numpy() for name, tensor in features.items()})[0]


@pytest.fixture(scope="module", params=sorted(SINGLE_TASK_FAMILIES))
def trained_family(request: pytest.FixtureRequest, census_small: CensusData) -> tuple[nn.Module, TrainResult]:
    """Each family trained once on income, shared by the training and export tests."""
    torch.manual_seed(0)
    model = build_single_task_model(request.param, census_small.schema, income(census_small))
    result = train_model(
        model, [income(census_small)], census_small.train, census_small.validation, census_small.schema, FAST
    )
    return model, result


@pytest.mark.slow
def test_single_task_family_learns_income(
    trained_family: tuple[nn.Module, TrainResult], census_small: CensusData
) -> None:
    model, result = trained_family
    assert result.best_mean_validation > MIN_INCOME_AUC
    test_auc = evaluate_model(model, [income(census_small)], census_small.test, census_small.schema)["income"]
    assert test_auc > MIN_INCOME_AUC


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
def test_export_matches_pytorch(
    trained_family: tuple[nn.Module, TrainResult], census_small: CensusData, tmp_path: Path, dynamo: bool
) -> None:
    model, _ = trained_family
    schema, task = census_small.schema, income(census_small)
    path = export_onnx(model, schema, task, tmp_path / "model.onnx", dynamo=dynamo)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    assert [i.name for i in inputs] == schema.input_names
    assert [i.type for i in inputs] == ["tensor(int64)"] * len(schema.categorical) + ["tensor(float)"] * len(
        schema.dense
    )
    (output,) = session.get_outputs()
    assert output.name == "income" and len(output.shape) == 1
    for rows in (1, 37):
        frame = census_small.validation.iloc[100 : 100 + rows]
        expected = torch_answer(model, task, frame_tensors(frame, schema, [])[0])
        answered = onnx_answer(path, frame, schema)
        assert answered.shape == (rows,)
        assert np.all((answered > 0) & (answered < 1))
        np.testing.assert_allclose(answered, expected, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_export_logits_on_request(
    trained_family: tuple[nn.Module, TrainResult], census_small: CensusData, tmp_path: Path
) -> None:
    model, _ = trained_family
    schema, task = census_small.schema, income(census_small)
    path = export_onnx(model, schema, task, tmp_path / "logit.onnx", dynamo=False, output="logit")
    frame = census_small.validation.iloc[:50]
    with torch.no_grad():
        logits = model(frame_tensors(frame, schema, [])[0])["income"].numpy()
    np.testing.assert_allclose(onnx_answer(path, frame, schema), logits, rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MULTITASK_KINDS))
def test_multitask_baseline_learns_both_tasks(kind: str, census_small: CensusData) -> None:
    torch.manual_seed(0)
    model = build_multitask_model(kind, census_small.schema, census_small.tasks)
    result = train_model(
        model, census_small.tasks, census_small.train, census_small.validation, census_small.schema, FAST
    )
    best = result.history[result.best_epoch - 1].validation
    assert best["income"] > MIN_INCOME_AUC
    assert best["never_married"] > MIN_NEVER_MARRIED_AUC


def _all_models(schema: FeatureSchema, tasks: list[Task]) -> dict[str, nn.Module]:
    models = {family: build_single_task_model(family, schema, tasks[0]) for family in SINGLE_TASK_FAMILIES}
    models.update({kind: build_multitask_model(kind, schema, tasks) for kind in MULTITASK_KINDS})
    return models


def test_stem_output_is_the_only_path_from_inputs(census_small: CensusData) -> None:
    """Swap the stem's output for another batch's: every task output must follow the stem, not the inputs."""
    schema, tasks = census_small.schema, census_small.tasks
    first, _ = frame_tensors(census_small.validation.iloc[:16], schema, [])
    second, _ = frame_tensors(census_small.validation.iloc[16:32], schema, [])
    for name, model in _all_models(schema, tasks).items():
        model.eval()
        with torch.no_grad():
            expected = model(first)
            first_stem = model.stem(first)
            handle = model.stem.register_forward_hook(lambda module, args, output, swap=first_stem: swap)
            swapped = model(second)
            handle.remove()
        assert set(swapped) == set(expected), name
        for task_name in expected:
            torch.testing.assert_close(swapped[task_name], expected[task_name], msg=name)


@pytest.mark.parametrize(
    "columns",
    [SUBSET, ["education", "sex", "class_of_worker"], ["age", "weeks_worked_in_year"]],
    ids=["mixed", "categorical_only", "dense_only"],
)
def test_models_run_on_column_subsets(columns: list[str], census_small: CensusData) -> None:
    schema = census_small.schema.subset(columns)
    features, _ = frame_tensors(census_small.validation.iloc[:8], schema, [])
    for name, model in _all_models(schema, census_small.tasks).items():
        outputs = model(features)
        assert outputs["income"].shape == (8,), name
        assert torch.isfinite(outputs["income"]).all(), name


def test_subset_model_exports_only_its_columns(census_small: CensusData, tmp_path: Path) -> None:
    schema, task = census_small.schema.subset(SUBSET), income(census_small)
    torch.manual_seed(0)
    model = build_single_task_model("dcn", schema, task, hidden=(16, 8))
    path = export_onnx(model, schema, task, tmp_path / "subset.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["education", "sex", "age", "weeks_worked_in_year"]
    frame = census_small.validation.iloc[:37]
    expected = torch_answer(model, task, frame_tensors(frame, schema, [])[0])
    np.testing.assert_allclose(onnx_answer(path, frame, schema), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", sorted(SINGLE_TASK_FAMILIES))
def test_multiclass_and_regression_outputs(family: str, census_small: CensusData, tmp_path: Path) -> None:
    """Other task types: [N, C] class logits exported as probabilities, and an [N] value."""
    schema = census_small.schema.subset(SUBSET)
    classes = Task("worker_class", TaskType.MULTICLASS, label="class_of_worker", num_classes=10)
    value = Task("hourly_wage", TaskType.REGRESSION, label="wage_per_hour")
    frame = census_small.validation.iloc[:37]
    features, _ = frame_tensors(frame, schema, [])
    torch.manual_seed(0)
    multiclass = build_single_task_model(family, schema, classes)
    assert multiclass(features)["worker_class"].shape == (37, 10)
    assert build_single_task_model(family, schema, value)(features)["hourly_wage"].shape == (37,)

    path = export_onnx(multiclass, schema, classes, tmp_path / "classes.onnx", dynamo=False)
    answered = onnx_answer(path, frame, schema)
    assert answered.shape == (37, 10)
    np.testing.assert_allclose(answered.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(answered, torch_answer(multiclass, classes, features), rtol=0, atol=1e-5)


def test_multitask_models_answer_every_task(census_small: CensusData) -> None:
    features, _ = frame_tensors(census_small.validation.iloc[:5], census_small.schema, [])
    for kind in MULTITASK_KINDS:
        outputs = build_multitask_model(kind, census_small.schema, census_small.tasks)(features)
        assert {name: tuple(out.shape) for name, out in outputs.items()} == {"income": (5,), "never_married": (5,)}


def test_unknown_family_or_kind_is_refused_with_the_choices(census_small: CensusData) -> None:
    with pytest.raises(ValueError, match=r"unknown model family 'xgboost'.*mlp, dcn, deepfm, wide_deep"):
        build_single_task_model("xgboost", census_small.schema, income(census_small))
    with pytest.raises(ValueError, match=r"unknown multi-task model kind 'esmm'.*shared_bottom, mmoe, ple"):
        build_multitask_model("esmm", census_small.schema, census_small.tasks)
