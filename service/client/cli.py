"""The `fusebox` commands that talk to a running service: models, datasets, fuse (on the server), predict.

fusion/cli.py registers them beside the engine's local commands. `fusebox fuse SPEC` fuses here from a
spec file; `fusebox fuse --dataset ID --task NAME=MODEL,... [--wait]` starts a job on the server.
The server and key come from --url / --api-key, else FUSEBOX_URL / FUSEBOX_API_KEY.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, get_args

from service.client.client import DEFAULT_URL, FuseboxClient
from service.client.display import JobProgress, format_table, report_table
from service.client.errors import FuseboxError
from service.client.schemas import JobSpec, JobTaskSpec, TaskType

Command = Callable[[argparse.Namespace], int]


def register_remote_commands(commands: argparse._SubParsersAction, fuse: argparse.ArgumentParser) -> None:
    """Adds `models`, `datasets` and `predict`, and gives the local `fuse SPEC` a remote form."""
    models = commands.add_parser("models", help="source models on the server").add_subparsers(required=True)
    upload = models.add_parser("upload", help="upload a trained single-task ONNX model")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", required=True, help="unique name; fusion reports use it")
    upload.add_argument("--task", required=True, help="the task the model was trained for")
    upload.add_argument("--task-type", default="binary", choices=get_args(TaskType))
    upload.add_argument("--classes", type=int, help="number of classes (multiclass only)")
    upload.add_argument("--weights", type=Path, help="companion weights file (default: <file>.data if present)")
    upload.set_defaults(run=_remote(_upload_model))
    listing = models.add_parser("list", help="list source models, newest first")
    listing.add_argument("--name", help="only the model of this name")
    listing.set_defaults(run=_remote(_list_models))
    show = models.add_parser("show", help="one model: signature and component tree")
    show.add_argument("model", help="model id or name")
    show.set_defaults(run=_remote(_show_model))

    datasets = commands.add_parser("datasets", help="datasets on the server").add_subparsers(required=True)
    upload = datasets.add_parser("upload", help="upload a CSV or Parquet table")
    upload.add_argument("file", type=Path)
    upload.add_argument("--name", help="default: the file name")
    upload.add_argument("--label-columns", default="", help="comma-separated; these may have missing values")
    upload.set_defaults(run=_remote(_upload_dataset))
    listing = datasets.add_parser("list", help="list datasets, newest first")
    listing.set_defaults(run=_remote(_list_datasets))

    predict = commands.add_parser("predict", help="predictions of a deployed fused model")
    predict.add_argument("model", help="deployment name (the fusion job's name); the newest version answers")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--records", type=Path, help="a CSV file with a header row, a JSON list, or JSON lines")
    source.add_argument("--record", action="append", help="one row as a JSON object (repeatable)")
    predict.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    predict.set_defaults(run=_remote(_predict))

    for parser in (*models.choices.values(), *datasets.choices.values(), predict):
        _add_server_options(parser)
    _add_remote_fuse(fuse)


def _add_server_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--url", help=f"the fusebox API (default: $FUSEBOX_URL, else {DEFAULT_URL})")
    parser.add_argument("--api-key", help="sent as 'Authorization: Bearer <key>' (default: $FUSEBOX_API_KEY)")


def _add_remote_fuse(fuse: argparse.ArgumentParser) -> None:
    group = fuse.add_argument_group("a job on the server (instead of SPEC)")
    _add_server_options(group)
    group.add_argument("--dataset", help="training dataset id")
    group.add_argument(
        "--task", dest="tasks", action="append", metavar="NAME[:TYPE[:CLASSES]]=MODEL,...",
        help="a task and its source models (ids or names); repeat per task",
    )  # fmt: skip
    group.add_argument("--validation-dataset", help="validation dataset id")
    group.add_argument("--validation-fraction", type=float, help="or: carve validation rows out, e.g. 0.1")
    group.add_argument("--test-dataset", help="optional: the report adds test metrics")
    group.add_argument("--name", help="deployment name of the fused model (default: the first task's name)")
    group.add_argument("--strategy", choices=["frozen", "adaptive", "finetune"])
    group.add_argument("--set", dest="hyperparameters", action="append", metavar="KEY=VALUE", help="e.g. max_epochs=5")
    group.add_argument("--baseline", dest="baselines", action="append", choices=["shared_bottom", "mmoe", "ple"])
    group.add_argument("--wait", action="store_true", help="follow the job with a progress bar; print the report")
    run_local = fuse.get_default("run")
    flags = {action.dest: action.option_strings[0] for action in group._group_actions}
    fuse.set_defaults(run=lambda args: _local_or_remote(args, run_local, flags))


def _local_or_remote(args: argparse.Namespace, run_local: Command, remote_flags: dict[str, str]) -> int:
    given = [flag for dest, flag in remote_flags.items() if getattr(args, dest) not in (None, False)]
    if args.spec is not None and not given:
        return run_local(args)
    if args.spec is None and args.dataset is not None:
        return _remote(_fuse_on_server)(args)
    if args.spec is not None:
        raise ValueError(f"{', '.join(given)}: for a job on the server; a SPEC file fuses here. Give one or the other")
    raise ValueError("give a SPEC file (fuse here) or --dataset and --task (a job on the server)")


def _remote(command: Callable[[FuseboxClient, argparse.Namespace], int]) -> Command:
    """Opens the client from --url/--api-key (or the environment) and turns its errors into exit code 1."""

    @wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            with FuseboxClient(args.url, args.api_key) as client:
                return command(client, args)
        except FuseboxError as error:
            print(f"fusebox: {error}", file=sys.stderr)
            return 1

    return run


def _upload_model(client: FuseboxClient, args: argparse.Namespace) -> int:
    weights = args.weights or _existing(Path(f"{args.file}.data"))
    model = client.upload_model(args.file, args.name, args.task, args.task_type, args.classes, weights)
    print(f"uploaded {model.name}: {model.id}")
    print(f"{model.decomposition.parameter_count:,} parameters, {model.decomposition.body_components} body components")
    return 0


def _list_models(client: FuseboxClient, args: argparse.Namespace) -> int:
    rows = [
        (m.id, m.name, m.task.name, m.task.type, f"{m.decomposition.parameter_count:,}", _when(m.created_at))
        for m in client.list_models(name=args.name, limit=500)
    ]
    print(format_table(("id", "name", "task", "type", "parameters", "created"), rows))
    return 0


def _show_model(client: FuseboxClient, args: argparse.Namespace) -> int:
    model = client.get_model(_model_id(client, args.model))
    print(f"{model.name} ({model.id}): task {model.task.name} ({model.task.type}), {model.filename}")
    print(f"opset {model.signature.opset}, producer '{model.signature.producer or '?'}', sha256 {model.sha256}")
    inputs = [(i.name, i.kind, i.dtype, i.width, i.cardinality) for i in model.signature.inputs]
    print(format_table(("input", "kind", "dtype", "width", "ids <"), inputs))
    print(f"output: {model.signature.output_name} (width {model.signature.output_width})")
    print(model.decomposition.tree)
    return 0


def _upload_dataset(client: FuseboxClient, args: argparse.Namespace) -> int:
    labels = [column.strip() for column in args.label_columns.split(",") if column.strip()]
    dataset = client.upload_dataset(args.file, args.name, labels)
    print(f"uploaded {dataset.name}: {dataset.id}")
    print(f"{dataset.rows:,} rows, {len(dataset.columns)} columns")
    return 0


def _list_datasets(client: FuseboxClient, args: argparse.Namespace) -> int:
    rows = [
        (d.id, d.name, d.source_format, f"{d.rows:,}", len(d.columns), _when(d.created_at))
        for d in client.list_datasets(limit=500)
    ]
    print(format_table(("id", "name", "format", "rows", "columns", "created"), rows))
    return 0


def _fuse_on_server(client: FuseboxClient, args: argparse.Namespace) -> int:
    if not args.tasks:
        raise ValueError("a job on the server needs at least one --task NAME=MODEL,...")
    tasks = [_task_spec(client, text) for text in args.tasks]
    spec = JobSpec(
        name=args.name or tasks[0].name,
        tasks=tasks,
        dataset_id=args.dataset,
        validation_dataset_id=args.validation_dataset,
        validation_fraction=args.validation_fraction,
        test_dataset_id=args.test_dataset,
        strategy=args.strategy or "frozen",
        hyperparameters=dict(_hyperparameter(text) for text in args.hyperparameters or []),
        baselines=args.baselines or [],
    )
    job = client.create_job(spec)
    print(f"job {job.id} {job.status}", file=sys.stderr)
    if not args.wait:
        print(job.id)
        return 0
    job = client.wait_for_job(job.id, on_update=JobProgress(), poll_interval_s=0.5)
    if job.status != "succeeded":
        print(f"fusebox: job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), file=sys.stderr)
        return 1
    print(report_table(job))
    if job.deployment is not None:
        print(f"deployed as {job.deployment.name} version {job.deployment.version}: {job.deployment.infer_url}")
    return 0


def _predict(client: FuseboxClient, args: argparse.Namespace) -> int:
    records = _read_records(args.records) if args.records else [json.loads(text) for text in args.record]
    answer = client.predict(args.model, records)
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    print(f"{answer.model_name} version {answer.model_version}")
    tasks = list(answer.predictions[0]) if answer.predictions else []
    rows = [(row, *(prediction[task] for task in tasks)) for row, prediction in enumerate(answer.predictions)]
    print(format_table(("row", *tasks), rows))
    return 0


def _task_spec(client: FuseboxClient, text: str) -> JobTaskSpec:
    task, equals, models = text.partition("=")
    name, _, kind = task.partition(":")
    kind, _, classes = kind.partition(":")
    if not equals or not name or not models:
        raise ValueError(f"--task '{text}': write NAME=MODEL,MODEL (or NAME:TYPE=... / NAME:multiclass:N=...)")
    return JobTaskSpec(
        name=name,
        type=kind or "binary",
        classes=int(classes) if classes else None,
        models=[_model_id(client, ref.strip()) for ref in models.split(",") if ref.strip()],
    )


def _model_id(client: FuseboxClient, reference: str) -> uuid.UUID:
    """A model id as given, or the id of the model of that name."""
    try:
        return uuid.UUID(reference)
    except ValueError:
        pass
    found = client.list_models(name=reference, limit=1)
    if not found:
        raise ValueError(f"there is no model named '{reference}' on the server: `fusebox models list` shows them")
    return found[0].id


def _hyperparameter(text: str) -> tuple[str, int | float]:
    key, _, value = text.partition("=")
    number = _number(value)
    if not key.strip() or not isinstance(number, int | float):
        raise ValueError(f"--set '{text}': write KEY=NUMBER, e.g. max_epochs=5")
    return key.strip(), number


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Rows from CSV (numbers parsed, empty cells missing), a JSON list of objects, or JSON lines."""
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    loaded = json.loads(text)
    return loaded["records"] if isinstance(loaded, dict) else loaded


def _number(text: str) -> int | float | str | None:
    """Integers stay integers (category ids); text that is no number is left for the server to name."""
    if text.strip() == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _when(moment: datetime) -> str:
    return moment.isoformat(" ", "seconds")


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None
