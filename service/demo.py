"""The example flow behind `make demo`, as a user would go through it, against a running service.

Trains four Census-Income source models with the engine's zoo (or reuses them from var/demo), uploads
them and the data through the API, starts a fusion job, follows it with a progress bar, prints the
report, and queries the fused model through OIP v2 and /v1/predict.

This is a client: it imports torch to train the source models, which the API process never does.

    .venv/bin/python -m service.demo [--url http://127.0.0.1:8000] [--source-epochs 2] [--fusion-epochs 2]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from service.client import FuseboxClient, FuseboxError
from service.client.display import JobProgress, report_table
from service.client.schemas import Dataset, Job, SourceModel
from service.core.config import get_settings

if TYPE_CHECKING:
    from fusion.training import Progress

FOLDER = Path("var/demo")
SOURCES = [  # (family, task, exporter): two architectures per task, both PyTorch exporters
    ("mlp", "income", "dynamo"),
    ("dcn", "income", "legacy"),
    ("deepfm", "never_married", "dynamo"),
    ("wide_deep", "never_married", "legacy"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--source-epochs", type=int, default=2, help="epochs per source model (when trained)")
    parser.add_argument("--fusion-epochs", type=int, default=2)
    parser.add_argument(
        "--api-key",
        default=os.environ.get("FUSEBOX_API_KEY"),
        help="default: $FUSEBOX_API_KEY, else the key the service saved for the tenant 'local' at its first start",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    with FuseboxClient(args.url) as anonymous:
        _wait_for_api(anonymous)  # a new service saves the local key during its start-up
    with FuseboxClient(args.url, args.api_key or _local_key(), timeout_s=300) as client:
        job = _example(client, args.source_epochs, args.fusion_epochs)
    if job.status != "succeeded":
        print(f"job {job.status}: {job.error}", file=sys.stderr)
        return 1
    print(f"\nfinished in {time.perf_counter() - started:.0f}s. The service keeps running on {args.url} "
          f"(API docs: {args.url}/docs); `make stop` stops it.")  # fmt: skip
    return 0


def _example(client: FuseboxClient, source_epochs: int, fusion_epochs: int) -> Job:
    step("Census-Income data")
    frames = _census_files()
    step("Source models")
    files = _source_models(source_epochs)
    step("Uploading models and data")
    models: dict[str, list[str]] = {task: [] for _, task, _ in SOURCES}
    for (family, task, _), (path, weights) in zip(SOURCES, files, strict=True):
        model = _upload_model(client, f"{task}_{family}", task, path, weights)
        models[task].append(str(model.id))
        summary = model.decomposition
        print(f"  {model.name:<26} {summary.parameter_count:>7,} parameters, "
              f"{summary.body_components} body components")  # fmt: skip
    datasets = {split: _upload_dataset(client, path, split) for split, path in frames.items()}
    for split, dataset in datasets.items():
        print(f"  dataset {split:<11} {dataset.rows:>8,} rows, {len(dataset.columns)} columns")

    step("Fusion job")
    job = client.create_job(
        {
            "name": "census",
            "tasks": [{"name": task, "type": "binary", "models": ids} for task, ids in models.items()],
            "dataset_id": str(datasets["train"].id),
            "validation_dataset_id": str(datasets["validation"].id),
            "test_dataset_id": str(datasets["test"].id),
            "strategy": "frozen",
            "hyperparameters": {"max_epochs": fusion_epochs, "patience": 1},
        }
    )
    print(f"  POST /v1/fusion-jobs -> {job.id} ({job.status})")
    job = client.wait_for_job(job.id, on_update=JobProgress(sys.stdout), poll_interval_s=0.5)
    if job.status == "succeeded":
        print(report_table(job))
        assert job.deployment is not None  # a job succeeds once its fused model is deployed
        step(f"Inference: version {job.deployment.version} of 'census'")
        _query(client, pd.read_parquet(frames["test"]).head(4))
    return job


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _local_key() -> str:
    key_file = get_settings().local_key_file
    if not key_file.exists():
        sys.exit(f"no API key: pass --api-key or set FUSEBOX_API_KEY ({key_file} holds one only on a new service)")
    return key_file.read_text().strip()


def _wait_for_api(client: FuseboxClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.server_ready():
                return
        except FuseboxError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API at {client.url} did not answer; see var/log/api.log")


def _census_files() -> dict[str, Path]:
    """The prepared Census-Income splits as Parquet files, as a user would have them."""
    from fusion.data.census import load_census

    census = load_census()
    FOLDER.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("train", "validation", "test"):
        paths[split] = FOLDER / f"census_{split}.parquet"
        frame = getattr(census, split)
        if paths[split].exists():
            print(f"  {paths[split]}: {len(frame):,} rows (reused)")
        else:
            frame.to_parquet(paths[split], index=False)
            print(f"  {paths[split]}: {len(frame):,} rows, {frame.shape[1]} columns")
    return paths


def _source_models(epochs: int) -> list[tuple[Path, Path | None]]:
    files = []
    for family, task_name, exporter in SOURCES:
        path = FOLDER / "models" / f"{task_name}_{family}.onnx"
        if path.exists():
            print(f"  {path} (reused)")
        else:
            _train(family, task_name, exporter, epochs, path)
        weights = Path(f"{path}.data")
        files.append((path, weights if weights.exists() else None))
    return files


def _train(family: str, task_name: str, exporter: str, epochs: int, path: Path) -> None:
    import torch

    # The dynamo exporter warns about optional packages and deprecations that do not concern a user here.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    warnings.simplefilter("ignore", FutureWarning)

    from fusion.data.census import load_census
    from fusion.training import TrainConfig
    from fusion.zoo import build_single_task_model, evaluate_model, export_onnx, train_model

    census = load_census()
    task = next(task for task in census.tasks if task.name == task_name)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = build_single_task_model(family, census.schema, task)
    config = TrainConfig(max_epochs=epochs, patience=1, device="cpu")
    print(f"  training {path.name} ({family}, {task_name}) for up to {epochs} epochs", flush=True)
    train_model(model, [task], census.train, census.validation, census.schema, config, on_progress=_epoch_line)
    auc = evaluate_model(model, [task], census.test, census.schema)[task.name]
    export_onnx(model, census.schema, task, path, dynamo=exporter == "dynamo")
    print(f"  {path}: trained {epochs} epochs in {time.perf_counter() - started:.0f}s, test AUC {auc:.4f}")


def _epoch_line(progress: Progress) -> None:
    """Source training takes a minute a model: each epoch's validation metric shows that it moves."""
    if progress.validation is not None:
        metrics = " ".join(f"{task} {value:.4f}" for task, value in progress.validation.items())
        print(f"    epoch {progress.epoch}/{progress.max_epochs}: validation {metrics}", flush=True)


def _upload_model(client: FuseboxClient, name: str, task: str, path: Path, weights: Path | None) -> SourceModel:
    existing = client.list_models(name=name)
    return existing[0] if existing else client.upload_model(path, name=name, task=task, weights=weights)


def _upload_dataset(client: FuseboxClient, path: Path, split: str) -> Dataset:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for dataset in client.list_datasets(limit=500):
        if dataset.upload_sha256 == digest:
            return dataset
    return client.upload_dataset(path, name=split)


def _query(client: FuseboxClient, rows: pd.DataFrame) -> None:
    metadata = client.model_metadata("census")
    inputs = [
        {"name": spec.name, "shape": [len(rows)], "datatype": spec.datatype, "data": rows[spec.name].tolist()}
        for spec in metadata.inputs
    ]
    print(f"  POST /v2/models/census/infer  ({len(inputs)} inputs, {len(rows)} rows)")
    for output in client.infer("census", inputs).outputs:
        print(f"    {output.name:<14} {output.datatype} {output.shape}: "
              + ", ".join(f"{value:.4f}" for value in output.data))  # fmt: skip
    print("  POST /v1/predict/census  (records in, predictions out)")
    records = rows.drop(columns=["income", "never_married"]).to_dict("records")
    predictions = client.predict("census", records).predictions
    for (_, row), prediction in zip(rows.iterrows(), predictions, strict=True):
        print("    " + "  ".join(f"{task} {prediction[task]:.4f} (label {row[task]:.0f})" for task in prediction))


if __name__ == "__main__":
    sys.exit(main())
