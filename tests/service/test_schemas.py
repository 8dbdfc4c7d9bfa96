"""The API's job schema mirrors the engine's (which the API cannot import: it pulls in torch)."""

from __future__ import annotations

from typing import get_args

from fusion.akf.strategies import Strategy
from fusion.spec import BaselineKind, Hyperparameters, TaskSpec
from fusion.tasks import TaskType
from service.core.schemas import TaskType as ApiTaskType
from service.jobs import schemas


def test_hyperparameters_match_the_engine() -> None:
    engine, api = Hyperparameters.model_fields, schemas.Hyperparameters.model_fields
    assert list(api) == list(engine)
    for name, field in engine.items():
        assert (api[name].default, api[name].metadata, api[name].annotation) == (
            field.default,
            field.metadata,
            field.annotation,
        ), name


def test_task_types_strategies_and_baselines_match_the_engine() -> None:
    assert set(get_args(ApiTaskType)) == {t.value for t in TaskType}
    assert set(get_args(schemas.Strategy)) == {s.value for s in Strategy}
    assert set(get_args(schemas.BaselineKind)) == set(get_args(BaselineKind))
    assert set(schemas.JobTask.model_fields) - {"models"} == set(TaskSpec.model_fields)
