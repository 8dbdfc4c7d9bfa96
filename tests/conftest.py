"""Shared fixtures. Data comes from the real Census-Income files (downloaded once per machine)."""

from __future__ import annotations

import pytest
import torch

from fusion.akf.sources import FusionSource
from fusion.data.census import CensusData, load_census, subsample
from fusion.intake import LoadedModel
from fusion.intake.files import load_model_file
from fusion.training import TrainConfig
from fusion.zoo import SINGLE_TASK_FAMILIES, build_single_task_model, export_onnx, train_model

SLOW_FIXTURES = {"trained_sources", "zoo_models", "stack", "pg_stack", "embedded_stack"}
"""Fixtures that train or export models, or start the service's processes (tests/service/conftest.py; a
module's own stack takes one of these names too). Each takes seconds."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses a slow fixture, directly or through another fixture, is `slow`: the fast tier
    (`pytest -m "not slow"`) leaves it out. Tests slow on their own carry the mark themselves."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def census_small() -> CensusData:
    """A fixed subsample: 20,000 training rows, 5,000 validation and 5,000 test rows."""
    return subsample(load_census(), rows=20_000, seed=0)


@pytest.fixture(scope="session")
def zoo_models(
    tmp_path_factory: pytest.TempPathFactory, census_small: CensusData
) -> dict[tuple[str, str], LoadedModel]:
    """Every single-task family (small, untrained, seed 0) exported with both PyTorch exporters and
    accepted by intake, keyed by (family, exporter)."""
    folder = tmp_path_factory.mktemp("zoo")
    task = census_small.tasks[0]
    models = {}
    for family in sorted(SINGLE_TASK_FAMILIES):
        for exporter in ("dynamo", "legacy"):
            torch.manual_seed(0)
            model = build_single_task_model(family, census_small.schema, task, hidden=(16, 8))
            path = export_onnx(
                model, census_small.schema, task, folder / f"{family}_{exporter}.onnx", dynamo=exporter == "dynamo"
            )
            models[family, exporter] = load_model_file(path)
    return models


@pytest.fixture(scope="session")
def trained_sources(tmp_path_factory: pytest.TempPathFactory, census_small: CensusData) -> list[FusionSource]:
    """Two trained source models per Census task, of four families, through both exporters."""
    folder = tmp_path_factory.mktemp("sources")
    tasks = {task.name: task for task in census_small.tasks}
    config = TrainConfig(batch_size=256, learning_rate=3e-3, max_epochs=2, patience=1, device="cpu")
    sources = []
    for family, task_name, exporter in SOURCE_MODELS:
        torch.manual_seed(0)
        task = tasks[task_name]
        model = build_single_task_model(family, census_small.schema, task, hidden=(32, 16))
        train_model(model, [task], census_small.train, census_small.validation, census_small.schema, config)
        path = export_onnx(model, census_small.schema, task, folder / f"{family}.onnx", dynamo=exporter == "dynamo")
        sources.append(FusionSource(name=f"{task_name}_{family}", task=task_name, loaded=load_model_file(path)))
    return sources


SOURCE_MODELS = [
    ("mlp", "income", "legacy"),
    ("dcn", "income", "dynamo"),
    ("deepfm", "never_married", "legacy"),
    ("wide_deep", "never_married", "legacy"),
]
