"""Source models and datasets, as files on disk and as uploaded through the API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class SourceFile:
    name: str
    task: str
    path: Path
    weights: Path | None


@dataclass(frozen=True)
class DataFiles:
    train: Path
    validation: Path
    tasks: list[str]


@dataclass(frozen=True)
class Uploaded:
    """Source models (the API's answers, by task) and the training and validation datasets."""

    tasks: list[str]
    models: dict[str, dict]
    train: dict
    validation: dict

    def job_spec(self, name: str, hyperparameters: dict[str, int | float]) -> dict:
        """A job fusing each task's one source model, trained on `train`, validated on `validation`."""
        return {
            "name": name,
            "tasks": [{"name": task, "type": "binary", "models": [self.models[task]["id"]]} for task in self.tasks],
            "dataset_id": self.train["id"],
            "validation_dataset_id": self.validation["id"],
            "hyperparameters": hyperparameters,
        }


def upload_sources_and_data(
    client: httpx.Client,
    source_files: list[SourceFile],
    data_files: DataFiles,
    prefix: str,
) -> Uploaded:
    """The source models as `{prefix}_{source}`, the datasets as `{prefix} train` (its label columns may
    have gaps) and `{prefix} validation`."""
    models = {}
    for source in source_files:
        response = upload_model(client, source, name=f"{prefix}_{source.name}")
        assert response.status_code == 201, response.text
        models[source.task] = response.json()
    labels = ",".join(data_files.tasks)
    train = upload_dataset(client, data_files.train, name=f"{prefix} train", label_columns=labels)
    validation = upload_dataset(client, data_files.validation, name=f"{prefix} validation")
    assert train.status_code == validation.status_code == 201, (train.text, validation.text)
    return Uploaded(data_files.tasks, models, train.json(), validation.json())


def upload_model(client: httpx.Client, source: SourceFile, name: str | None = None, **fields: str) -> httpx.Response:
    files = {"file": (source.path.name, source.path.read_bytes())}
    if source.weights is not None:
        files["weights"] = (source.weights.name, source.weights.read_bytes())
    return client.post("/v1/models", files=files, data={"name": name or source.name, "task": source.task, **fields})


def upload_dataset(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (path.name, path.read_bytes())}, data=fields)
