"""Fixtures of the service tests. The service runs for real (tests/helpers/stacks.py): uvicorn and a Celery
worker as subprocesses, on PostgreSQL and Redis (each test session gets its own database and Redis
database), or on the embedded defaults (SQLite and the filesystem broker under a temporary folder).
Requests go over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

from fusion.data.census import CensusData
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model
from service.local_databases import fresh_postgres, fresh_redis
from tests.helpers.jobs import CensusJob, CensusJobs
from tests.helpers.stacks import Stack, start_stack
from tests.helpers.uploads import DataFiles, SourceFile


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with fresh_redis() as url:
        yield url


@pytest.fixture(scope="session")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("pg-stack"), postgres_url, redis_url) as stack:
        yield stack


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(tmp_path_factory.mktemp("embedded-stack")) as stack:
        yield stack


@pytest.fixture(scope="module", params=["pg_stack", "embedded_stack"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """Each test of a module that asks for `stack` runs on PostgreSQL + Redis, then on the embedded defaults.
    A module narrows it to one by defining its own `stack` (a module's own stacks take these fixtures' names,
    which mark their tests `slow`: tests/conftest.py)."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def source_files(tmp_path_factory: pytest.TempPathFactory, census_small: CensusData) -> list[SourceFile]:
    """One small trained model per Census task: an MLP in one file (legacy exporter), a DeepFM with its
    weights beside it in model.onnx.data (dynamo exporter)."""
    folder = tmp_path_factory.mktemp("service-sources")
    tasks = {task.name: task for task in census_small.tasks}
    config = TrainConfig(batch_size=512, learning_rate=3e-3, max_epochs=1, patience=1, device="cpu")
    files = []
    for family, task_name, dynamo in (("mlp", "income", False), ("deepfm", "never_married", True)):
        torch.manual_seed(0)
        task = tasks[task_name]
        model = build_single_task_model(family, census_small.schema, task, hidden=(16, 8))
        train_model(model, [task], census_small.train, census_small.validation, census_small.schema, config)
        path = export_onnx(model, census_small.schema, task, folder / f"{task_name}_{family}.onnx", dynamo=dynamo)
        weights = Path(f"{path}.data")
        files.append(SourceFile(f"{task_name}_{family}", task_name, path, weights if weights.exists() else None))
    return files


@pytest.fixture(scope="session")
def data_files(tmp_path_factory: pytest.TempPathFactory, census_small: CensusData) -> DataFiles:
    """Census rows as a user would upload them: training rows as Parquet, validation rows as CSV."""
    folder = tmp_path_factory.mktemp("service-data")
    census_small.train.head(6000).to_parquet(folder / "train.parquet", index=False)
    census_small.validation.head(2000).to_csv(folder / "validation.csv", index=False)
    return DataFiles(folder / "train.parquet", folder / "validation.csv", [t.name for t in census_small.tasks])


@pytest.fixture(scope="session")
def census_jobs(source_files: list[SourceFile], data_files: DataFiles) -> CensusJobs:
    """The small Census fusion job, run once per stack for every module that reads it (serving, auth, flow)."""
    return CensusJobs(source_files, data_files)


@pytest.fixture(scope="module")
def census_job(stack: Stack, census_jobs: CensusJobs) -> CensusJob:
    """The Census job on the module's `stack`."""
    return census_jobs.on(stack)


@pytest.fixture(scope="module")
def deployed(stack: Stack, census_job: CensusJob, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fused model of the module's Census job (deployed under its name), downloaded as an ONNX file."""
    path = tmp_path_factory.mktemp("served") / "fused.onnx"
    with stack.client() as client:
        path.write_bytes(client.get(f"/v1/fusion-jobs/{census_job.job['id']}/model").content)
    return path


@pytest.fixture(scope="module")
def rows(data_files: DataFiles) -> pd.DataFrame:
    """Validation rows to send to a deployed model."""
    return pd.read_csv(data_files.validation).head(40)
