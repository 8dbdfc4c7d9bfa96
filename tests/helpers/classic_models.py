"""Small tabular data and classic models trained on it (LightGBM, XGBoost, scikit-learn), converted to
ONNX the way their users do: onnxmltools for the boosting libraries, skl2onnx for scikit-learn. Each
model reads one float tensor 'features' [N, 5] built from two id columns and three value columns, and
comes with its library's own raw score (margin, decision function, forest average) to compare with."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import torch

from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.intake import load_model
from fusion.intake.files import load_model_file
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model

ID_COLUMNS = ("cat_a", "cat_b")
VALUE_COLUMNS = ("x1", "x2", "x3")
FEATURE_COLUMNS = (*ID_COLUMNS, *VALUE_COLUMNS)
TREE_INPUT = "features"


def tabular_frame(rows: int, seed: int) -> pd.DataFrame:
    """Ids and values with three labels: binary `label`, regression `amount`, three-class `kind`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "cat_a": rng.integers(0, 6, rows),
            "cat_b": rng.integers(0, 3, rows),
            "x1": rng.normal(size=rows).astype(np.float32),
            "x2": rng.normal(size=rows).astype(np.float32),
            "x3": rng.normal(size=rows).astype(np.float32),
        }
    )
    signal = frame.x1 + 0.8 * frame.x2 * (frame.cat_a > 2) - 0.5 * (frame.cat_b == 1) + 0.3 * frame.x3**2
    frame["label"] = (signal + rng.normal(scale=0.7, size=rows) > 0.3).astype(np.int64)
    frame["amount"] = (signal + rng.normal(scale=0.3, size=rows)).astype(np.float32)
    frame["kind"] = np.digitize(signal + rng.normal(scale=0.5, size=rows), [-0.5, 0.8]).astype(np.int64)
    return frame


def feature_matrix(frame: pd.DataFrame) -> np.ndarray:
    return frame[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)


@dataclass(frozen=True)
class ClassicModel:
    kind: str
    task: str
    """'binary', 'regression' or 'multiclass' (three classes)."""
    onnx_bytes: bytes
    raw_score: Callable[[np.ndarray], np.ndarray]
    """The library's raw score for a feature matrix, [N, targets]: what the stage groups add up to."""
    trees: int
    predict: Callable[[np.ndarray], np.ndarray]
    """The library's prediction: positive-class probability [N], class probabilities [N, C], or value [N]."""


def _as_columns(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1)


def _positive(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: model.predict_proba(x)[:, 1]


def train_classic(kind: str, frame: pd.DataFrame) -> ClassicModel:
    """One of KINDS, trained on `frame` with a handful of small trees, and converted without ZipMap."""
    features = feature_matrix(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _TRAINERS[kind](features, frame)


def _onnxmltools(model: object, converter: str) -> bytes:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    convert = getattr(onnxmltools, converter)
    initial = [(TREE_INPUT, FloatTensorType([None, len(FEATURE_COLUMNS)]))]
    options = {"zipmap": False} if converter == "convert_lightgbm" and "Classifier" in type(model).__name__ else {}
    return convert(model, initial_types=initial, **options).SerializeToString()


def _skl2onnx(model: object, zipmap: bool = False) -> bytes:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    initial = [(TREE_INPUT, FloatTensorType([None, len(FEATURE_COLUMNS)]))]
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    options = None if zipmap or not hasattr(final, "predict_proba") else {id(final): {"zipmap": False}}
    converted = to_onnx(model, initial_types=initial, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    return converted.SerializeToString()


def _lightgbm(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=7, num_leaves=6, min_child_samples=5, verbose=-1)
    model.fit(features, frame.label)
    raw = lambda x: _as_columns(model.predict(x, raw_score=True))  # noqa: E731
    return ClassicModel(
        "lightgbm", "binary", _onnxmltools(model, "convert_lightgbm"), raw, 7, lambda x: model.predict_proba(x)[:, 1]
    )


def _lightgbm_multiclass(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=4, num_leaves=5, min_child_samples=5, verbose=-1)
    model.fit(features, frame.kind)
    raw = lambda x: _as_columns(model.predict(x, raw_score=True))  # noqa: E731
    return ClassicModel(
        "lightgbm_multiclass", "multiclass", _onnxmltools(model, "convert_lightgbm"), raw, 12, model.predict_proba
    )


def _xgboost(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=6, max_depth=3, n_jobs=1)
    model.fit(features, frame.label)
    raw = lambda x: _as_columns(model.predict(x, output_margin=True))  # noqa: E731
    return ClassicModel(
        "xgboost", "binary", _onnxmltools(model, "convert_xgboost"), raw, 6, lambda x: model.predict_proba(x)[:, 1]
    )


def _gradient_boosting(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0).fit(features, frame.label)
    raw = lambda x: _as_columns(model.decision_function(x))  # noqa: E731
    return ClassicModel("gradient_boosting", "binary", _skl2onnx(model), raw, 6, _positive(model))


def _gradient_boosting_regressor(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(n_estimators=6, max_depth=2, random_state=0).fit(features, frame.amount)
    raw = lambda x: _as_columns(model.predict(x))  # noqa: E731
    return ClassicModel("gradient_boosting_regressor", "regression", _skl2onnx(model), raw, 6, model.predict)


def _random_forest(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(features, frame.label)
    raw = lambda x: _as_columns(model.predict_proba(x)[:, 1])  # noqa: E731  (skl2onnx keeps class 1 only)
    return ClassicModel("random_forest", "binary", _skl2onnx(model), raw, 5, _positive(model))


def _random_forest_regressor(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0).fit(features, frame.amount)
    raw = lambda x: _as_columns(model.predict(x))  # noqa: E731
    return ClassicModel("random_forest_regressor", "regression", _skl2onnx(model), raw, 5, model.predict)


def _hist_gradient_boosting(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=6, max_depth=3, random_state=0).fit(features, frame.label)
    raw = lambda x: _as_columns(model.decision_function(x))  # noqa: E731
    return ClassicModel(
        "hist_gradient_boosting", "binary", _skl2onnx(model), raw, 6, lambda x: model.predict_proba(x)[:, 1]
    )


def _gradient_boosting_multiclass(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(features, frame.kind)
    raw = lambda x: _as_columns(model.decision_function(x))  # noqa: E731
    return ClassicModel("gradient_boosting_multiclass", "multiclass", _skl2onnx(model), raw, 9, model.predict_proba)


def _scaled_logistic_regression(features: np.ndarray, frame: pd.DataFrame) -> ClassicModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, frame.label)
    raw = lambda x: np.stack([-model.decision_function(x), model.decision_function(x)], axis=1)  # noqa: E731
    return ClassicModel(
        "scaled_logistic_regression", "binary", _skl2onnx(model), raw, 0, lambda x: model.predict_proba(x)[:, 1]
    )


_TRAINERS: dict[str, Callable[[np.ndarray, pd.DataFrame], ClassicModel]] = {
    "lightgbm": _lightgbm,
    "lightgbm_multiclass": _lightgbm_multiclass,
    "xgboost": _xgboost,
    "gradient_boosting": _gradient_boosting,
    "gradient_boosting_regressor": _gradient_boosting_regressor,
    "gradient_boosting_multiclass": _gradient_boosting_multiclass,
    "random_forest": _random_forest,
    "random_forest_regressor": _random_forest_regressor,
    "hist_gradient_boosting": _hist_gradient_boosting,
    "scaled_logistic_regression": _scaled_logistic_regression,
}
KINDS = tuple(_TRAINERS)


def with_zipmap(frame: pd.DataFrame) -> bytes:
    """A scikit-learn classifier converted with skl2onnx's default ZipMap output."""
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(n_estimators=2, max_depth=2).fit(feature_matrix(frame), frame.label)
    return _skl2onnx(model, zipmap=True)


def memorising_lightgbm(frame: pd.DataFrame) -> bytes:
    """A LightGBM classifier of `label` grown until it fits `frame` almost exactly, converted by onnxmltools:
    far better on those rows than on any other, as boosted models are on their training rows."""
    import lightgbm

    model = lightgbm.LGBMClassifier(n_estimators=300, num_leaves=31, min_child_samples=2, verbose=-1)
    model.fit(feature_matrix(frame), frame.label)
    return _onnxmltools(model, "convert_lightgbm")


def onnx_model(model: ClassicModel) -> onnx.ModelProto:
    return onnx.load_from_string(model.onnx_bytes)


TASKS = {
    "binary": Task("label", TaskType.BINARY, "label"),
    "regression": Task("amount", TaskType.REGRESSION, "amount"),
    "multiclass": Task("kind", TaskType.MULTICLASS, "kind", num_classes=3),
}
SCHEMA = FeatureSchema(
    categorical=(CategoricalFeature("cat_a", 6), CategoricalFeature("cat_b", 3)), dense=VALUE_COLUMNS
)


def classic_source(model: ClassicModel, name: str | None = None) -> FusionSource:
    """The model as a fusion source: its one tensor fed from the id and value columns."""
    return FusionSource(
        name=name or model.kind,
        task=TASKS[model.task].name,
        loaded=load_model(model.onnx_bytes),
        input_columns={TREE_INPUT: FEATURE_COLUMNS},
    )


def neural_onnx(task_type: str, frame: pd.DataFrame, path: Path) -> Path:
    """A small MLP (one input per column) trained for one epoch on `frame`, exported by PyTorch."""
    task = TASKS[task_type]
    torch.manual_seed(0)
    model = build_single_task_model("mlp", SCHEMA, task, hidden=(16, 8))
    config = TrainConfig(batch_size=256, learning_rate=3e-3, max_epochs=1, device="cpu")
    train_model(model, [task], frame, frame, SCHEMA, config)
    return export_onnx(model, SCHEMA, task, path, dynamo=False)


def neural_source(task_type: str, frame: pd.DataFrame, folder: Path) -> FusionSource:
    path = neural_onnx(task_type, frame, folder / f"mlp_{task_type}.onnx")
    return FusionSource(name=f"mlp_{task_type}", task=TASKS[task_type].name, loaded=load_model_file(path))
