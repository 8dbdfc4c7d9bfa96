"""`fusebox models ...` and `fusebox datasets ...`: what the service holds to fuse from."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import get_args

from fusion.report_table import format_table
from service.cli.references import dataset_id, model_id
from service.cli.remote import server_command
from service.client.client import FuseboxClient
from service.client.schemas import TaskType


def register_catalog_commands(commands: argparse._SubParsersAction) -> None:
    models = commands.add_parser("models", help="source models on the server").add_subparsers(required=True)
    upload = models.add_parser("upload", help="upload a trained single-task ONNX model")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", required=True, help="unique name; fusion reports use it")
    upload.add_argument("--task", required=True, help="the task the model was trained for")
    upload.add_argument("--task-type", default="binary", choices=get_args(TaskType))
    upload.add_argument("--classes", type=int, help="number of classes (multiclass only)")
    upload.add_argument("--weights", type=Path, help="companion weights file (default: <file>.data if present)")
    server_command(upload, _upload_model)
    listing = models.add_parser("list", help="list source models, newest first")
    listing.add_argument("--name", help="only the model of this name")
    server_command(listing, _list_models)
    show = models.add_parser("show", help="one model: signature and component tree")
    show.add_argument("model", help="model id or name")
    server_command(show, _show_model)

    datasets = commands.add_parser("datasets", help="datasets on the server").add_subparsers(required=True)
    upload = datasets.add_parser("upload", help="upload a CSV or Parquet table")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", help="default: the file name")
    upload.add_argument("--label-columns", default="", help="comma-separated; these may have missing values")
    server_command(upload, _upload_dataset)
    add = datasets.add_parser(
        "add", help="register Parquet files under the server's data root, or in S3/GCS, read in place"
    )
    add.add_argument(
        "uri", help="a Parquet file, folder or glob, relative to FUSEBOX_DATA_ROOT; or an s3:// or gs:// URL"
    )
    add.add_argument("--name", help="default: the URI")
    add.add_argument("--label-columns", default="", help="comma-separated; these may have missing values")
    server_command(add, _add_dataset)
    server_command(datasets.add_parser("list", help="list datasets, newest first"), _list_datasets)
    show = datasets.add_parser("show", help="one dataset: rows and column statistics")
    show.add_argument("dataset", help="dataset id or name")
    server_command(show, _show_dataset)


def _upload_model(client: FuseboxClient, args: argparse.Namespace) -> int:
    companion = Path(f"{args.file}.data")
    weights = args.weights or (companion if companion.exists() else None)
    model = client.upload_model(args.file, args.name, args.task, args.task_type, args.classes, weights)
    print(f"uploaded {model.name}: {model.id}")
    print(f"{model.decomposition.parameter_count:,} parameters, {model.decomposition.body_components} body components")
    return 0


def _list_models(client: FuseboxClient, args: argparse.Namespace) -> int:
    rows = [
        (m.id, m.name, m.task.name, m.task.type, f"{m.decomposition.parameter_count:,}", when(m.created_at))
        for m in client.list_models(name=args.name, limit=500)
    ]
    print(format_table(("id", "name", "task", "type", "parameters", "created"), rows))
    return 0


def _show_model(client: FuseboxClient, args: argparse.Namespace) -> int:
    model = client.get_model(model_id(client, args.model))
    print(f"{model.name} ({model.id}): task {model.task.name} ({model.task.type}), {model.filename}")
    print(f"opset {model.signature.opset}, producer '{model.signature.producer or '?'}', sha256 {model.sha256}")
    inputs = [(i.name, i.kind, i.dtype, i.width, i.cardinality) for i in model.signature.inputs]
    print(format_table(("input", "kind", "dtype", "width", "ids <"), inputs))
    print(f"output: {model.signature.output_name} (width {model.signature.output_width})")
    print(model.decomposition.tree)
    return 0


def _upload_dataset(client: FuseboxClient, args: argparse.Namespace) -> int:
    dataset = client.upload_dataset(args.file, args.name, _labels(args))
    print(f"uploaded {dataset.name}: {dataset.id}")
    print(f"{dataset.rows:,} rows, {len(dataset.columns)} columns")
    return 0


def _add_dataset(client: FuseboxClient, args: argparse.Namespace) -> int:
    dataset = client.add_dataset(args.uri, args.name, _labels(args))
    print(f"registered {dataset.name}: {dataset.id}")
    print(f"{dataset.rows:,} rows, {len(dataset.columns)} columns, {len(dataset.files or [])} file(s) read in place")
    return 0


def _labels(args: argparse.Namespace) -> list[str]:
    return [column.strip() for column in args.label_columns.split(",") if column.strip()]


def _list_datasets(client: FuseboxClient, args: argparse.Namespace) -> int:
    rows = [
        (d.id, d.name, d.source_format, f"{d.rows:,}", len(d.columns), when(d.created_at))
        for d in client.list_datasets(limit=500)
    ]
    print(format_table(("id", "name", "format", "rows", "columns", "created"), rows))
    return 0


def _show_dataset(client: FuseboxClient, args: argparse.Namespace) -> int:
    dataset = client.get_dataset(dataset_id(client, args.dataset))
    where = f"sha256 {dataset.sha256}" if dataset.uri is None else f"read in place from {dataset.uri}"
    print(f"{dataset.name} ({dataset.id}): {dataset.rows:,} rows, {dataset.source_format}, {where}")
    columns = [(c.name, c.dtype, c.missing, c.min, c.max, "yes" if c.integer_valued else "") for c in dataset.columns]
    print(format_table(("column", "dtype", "missing", "min", "max", "integer"), columns))
    return 0


def when(moment: datetime) -> str:
    return moment.isoformat(" ", "seconds")
