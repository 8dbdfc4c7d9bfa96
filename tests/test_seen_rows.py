"""The report says when a source model scores the fusion's training rows far better than the validation
rows: it has been trained on them, and the fusion would learn to trust it too much."""

from __future__ import annotations

import numpy as np
import pytest

from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.report import Score
from fusion.akf.seen_rows import looks_seen
from fusion.akf.sources import FusionSource
from fusion.intake import load_model
from fusion.training import TrainConfig
from tests.helpers.classic_models import FEATURE_COLUMNS, TASKS, TREE_INPUT, memorising_lightgbm, tabular_frame

QUICK = TrainConfig(batch_size=256, max_epochs=1, device="cpu")
TREE_ROWS, OTHER_ROWS = tabular_frame(1500, 20), tabular_frame(1500, 21)
VALIDATION = tabular_frame(1000, 22)


@pytest.fixture(scope="module")
def trees() -> FusionSource:
    """Trained on TREE_ROWS only."""
    return FusionSource(
        name="trees",
        task=TASKS["binary"].name,
        loaded=load_model(memorising_lightgbm(TREE_ROWS)),
        input_columns={TREE_INPUT: FEATURE_COLUMNS},
    )


@pytest.mark.slow
def test_a_source_fused_on_its_own_training_rows_is_flagged(trees: FusionSource) -> None:
    result = fuse([TASKS["binary"]], [trees], FusionData(TREE_ROWS, VALIDATION), FusionSettings(training=QUICK))
    score = result.report.tasks[0].sources["trees"]
    assert score.train is not None and score.train > 0.99 > score.validation
    (warning,) = result.report.seen_rows_warnings
    assert warning.startswith(f"source trees: auc {score.train:.4f} on the first 1,500 training rows vs ")
    assert "fuse on rows the sources did not see" in warning
    assert f"warning: {warning}" in result.report.format_table()
    assert result.report.to_dict()["seen_rows_warnings"] == [warning]


@pytest.mark.slow
def test_a_source_fused_on_rows_it_never_saw_is_not_flagged(trees: FusionSource) -> None:
    result = fuse([TASKS["binary"]], [trees], FusionData(OTHER_ROWS, VALIDATION), FusionSettings(training=QUICK))
    score = result.report.tasks[0].sources["trees"]
    assert score.train is not None and abs(score.train - score.validation) < 0.03
    assert result.report.seen_rows_warnings == []
    assert "warning:" not in result.report.format_table()


BALANCED = np.tile([0.0, 1.0], 5000)
"""10,000 labels, half positive: a sample on which the metrics' own noise is small."""


@pytest.mark.parametrize(
    ("task_type", "train", "validation", "seen"),
    [
        ("binary", 0.985, 0.931, True),  # error 0.015 vs 0.069
        ("binary", 0.955, 0.948, False),  # error 0.045 vs 0.052: mild fitting, no warning
        ("multiclass", 0.95, 0.80, True),
        ("regression", -0.20, -0.45, True),  # RMSE 0.20 vs 0.45
        ("regression", -0.42, -0.45, False),
    ],
)
def test_the_gap_is_measured_on_the_error(task_type: str, train: float, validation: float, seen: bool) -> None:
    score = Score(validation=validation, train=train)
    assert looks_seen(TASKS[task_type], score, BALANCED, BALANCED) is seen


def test_a_gap_within_the_metrics_noise_is_not_flagged() -> None:
    """Measured on Census: an MLP that never saw the rows, scored on 1,000 of them with 60 positives."""
    few_positives = np.repeat([1.0, 0.0], [60, 940])
    validation = np.repeat([1.0, 0.0], [1550, 23450])
    score = Score(validation=0.9412, train=0.9652)
    assert not looks_seen(TASKS["binary"], score, few_positives, validation)
    assert looks_seen(TASKS["binary"], score, validation, validation), "the same gap on 25,000 rows is no noise"


def test_no_train_score_no_warning() -> None:
    assert not looks_seen(TASKS["binary"], Score(validation=0.9), BALANCED, BALANCED)
    assert not looks_seen(TASKS["binary"], Score(validation=float("nan"), train=0.99), BALANCED, BALANCED)
