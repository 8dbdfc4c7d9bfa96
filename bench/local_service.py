"""The fusebox service a benchmark measures: the API and one worker started by service/local_stack.py on
the embedded defaults, and the Census fusion it deploys."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.census_fusion import MODELS, SOURCES
from fusion.data.census import CensusData
from service.client import Dataset, FuseboxClient, JobSpec, JobTaskSpec
from service.local_stack import LocalStack


def local_service(folder: Path, settings: Mapping[str, str] | None = None) -> LocalStack:
    """The API and one worker on the embedded defaults in `folder`, with more FUSEBOX_* `settings`, logging
    warnings only (so that logging stays off the measured path); use it as a context manager, which stops them."""
    return LocalStack.start(folder, settings=settings, log_level="warning")


def census_source_paths() -> list[Path]:
    """The four Census source models bench/census_fusion.py leaves in var/bench/models (exits without them)."""
    paths = [MODELS / f"{task}_{family}.onnx" for family, task, _ in SOURCES]
    if missing := [str(path) for path in paths if not path.exists()]:
        sys.exit(f"missing source models {missing}: run bench/census_fusion.py first")
    return paths


def upload_census_sources(client: FuseboxClient) -> dict[str, list[str]]:
    """Uploads the four Census source models; returns the model ids by task."""
    models: dict[str, list[str]] = {}
    for (family, task, _), path in zip(SOURCES, census_source_paths(), strict=True):
        weights = Path(f"{path}.data")
        uploaded = client.upload_model(
            path, name=f"{task}_{family}", task=task, weights=weights if weights.exists() else None
        )
        models.setdefault(task, []).append(str(uploaded.id))
    return models


def census_job_spec(name: str, models: dict[str, list[str]], datasets: dict[str, Dataset], **extra: Any) -> JobSpec:
    """A frozen fusion of the Census sources, validated on the `validation` dataset (and tested on `test`,
    when there is one)."""
    return JobSpec(
        name=name,
        tasks=[JobTaskSpec(name=task, models=ids) for task, ids in models.items()],
        dataset_id=datasets["train"].id,
        validation_dataset_id=datasets["validation"].id,
        test_dataset_id=datasets["test"].id if "test" in datasets else None,
        **extra,
    )


def deploy_census_fusion(client: FuseboxClient, census: CensusData, name: str, folder: Path) -> Path:
    """Uploads the Census sources and data, runs a one-epoch frozen job on all training rows deployed as
    `name`, and returns the fused file: the graph the full job exports (sources and AKF head), only one epoch
    less trained. Exits if a task fell back to a source model, whose answer would leave the head out."""
    models = upload_census_sources(client)
    splits = {"train": census.train, "validation": census.validation}
    for split, data in splits.items():
        data.to_parquet(folder / f"{split}.parquet", index=False)
    datasets = {split: client.upload_dataset(folder / f"{split}.parquet", name=split) for split in splits}
    spec = census_job_spec(name, models, datasets, hyperparameters={"max_epochs": 1, "batch_size": 1024})
    job = client.wait_for_job(client.create_job(spec).id, poll_interval_s=0.5, timeout_s=600)
    if job.status != "succeeded":
        sys.exit(f"the fusion job {job.status}: {job.error}")
    answered_by = {task["task"]: task["answered_by"] for task in job.report["tasks"]}
    if fallbacks := {task: model for task, model in answered_by.items() if model != "fused"}:
        sys.exit(f"the fused model answers {fallbacks} with source models: it would not measure the fused graph")
    return client.download_model(job.id, folder / "fused.onnx")
