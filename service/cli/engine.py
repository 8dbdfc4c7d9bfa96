"""`fusebox train-single | inspect | fuse SPEC | evaluate`: the engine, on this machine.

Data files are read as chunked tables (fusion/data/files.py), one row group at a time, as the worker
reads them: a CSV file is first streamed into a Parquet copy in a temporary folder.

The engine's modules (torch, numpy, pandas, onnx) are imported by the commands that use them: they take
seconds to load, and a client install has none of them, yet `fusebox --help` and the server commands
must work there."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fusion.task_types import TaskType

if TYPE_CHECKING:
    from fusion.akf.pipeline import FusionData
    from fusion.data.schema import FeatureSchema
    from fusion.data.tables import Table
    from fusion.spec import FuseSpec
    from fusion.tasks import Task
    from fusion.training import Progress


def register_engine_commands(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds the engine's commands; returns `fuse`, which the server commands extend."""
    train = commands.add_parser("train-single", help="train a reference single-task model and export it to ONNX")
    train.add_argument("--family", required=True, help="mlp, dcn, deepfm or wide_deep")
    train.add_argument("--task", required=True, help="task name (on Census-Income: income or never_married)")
    train.add_argument("--type", default="binary", choices=[t.value for t in TaskType if t != TaskType.MULTICLASS])
    train.add_argument("--train", type=Path, help="training data (CSV or Parquet); default: Census-Income")
    train.add_argument("--validation", type=Path, help="validation data; default: 10%% of --train")
    train.add_argument("--label", help="label column (default: the task name)")
    train.add_argument("--features", help="comma-separated feature columns (default: all but labels)")
    train.add_argument("--exclude", default="", help="comma-separated columns that are not features")
    train.add_argument("--hidden", help="hidden widths, e.g. 128,64,32")
    train.add_argument("--exporter", choices=["dynamo", "legacy"], default="dynamo")
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--patience", type=int, default=2)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    train.set_defaults(run=_train_single)

    inspect = commands.add_parser("inspect", help="check an ONNX model and print its component tree")
    inspect.add_argument("model", type=Path)
    inspect.add_argument("--weights", type=Path, help="companion weights file (default: <model>.data if present)")
    inspect.set_defaults(run=_inspect)

    fuse = commands.add_parser("fuse", help="fuse models as a JSON/YAML spec says; print progress and the report")
    fuse.add_argument("spec", type=Path, nargs="?", help="fusion spec (YAML/JSON) to fuse here")
    fuse.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    fuse.add_argument("--cache", type=Path, help="folder to keep component outputs in across runs")
    fuse.set_defaults(run=_fuse)

    evaluate = commands.add_parser("evaluate", help="score an ONNX model (single-task or fused) on labelled data")
    evaluate.add_argument("model", type=Path)
    evaluate.add_argument("data", type=Path)
    evaluate.add_argument(
        "--task", action="append", default=[], metavar="NAME:TYPE[:LABEL]", help="for a single-task model"
    )
    evaluate.set_defaults(run=_evaluate)
    return fuse


def _train_single(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="fusebox-train-") as scratch:
        return _train_single_in(args, Path(scratch))


def _train_single_in(args: argparse.Namespace, scratch: Path) -> int:
    from fusion.data.census import load_census
    from fusion.data.files import open_table
    from fusion.data.tables import as_table, split_table
    from fusion.tasks import Task
    from fusion.training import TrainConfig
    from fusion.zoo import build_single_task_model, evaluate_model, export_onnx, train_model

    task = Task(name=args.task, type=TaskType(args.type), label=args.label or args.task)
    test: Table | None
    if args.train is None:
        census = load_census()
        train, validation, test = as_table(census.train), as_table(census.validation), as_table(census.test)
        schema = census.schema
    else:
        train = open_table(args.train, scratch)
        if args.validation:
            validation = open_table(args.validation, scratch)
        else:
            train, validation = split_table(train, 0.1, args.seed)
        test = None
        schema = _infer_schema(train, validation, args.features, {task.label, *_csv(args.exclude)})
    hyper = {"hidden": tuple(int(w) for w in _csv(args.hidden))} if args.hidden else {}
    model = build_single_task_model(args.family, schema, task, **hyper)
    config = TrainConfig(max_epochs=args.epochs, patience=args.patience, seed=args.seed)
    progress = _ProgressLine()
    result = train_model(model, [task], train, validation, schema, config, on_progress=progress)
    progress.end()
    print(f"best epoch {result.best_epoch}: validation {task.metric_name} {result.best_mean_validation:.4f}")
    if test is not None:
        print(f"test {task.metric_name} {evaluate_model(model, [task], test, schema)[task.name]:.4f}")
    path = export_onnx(model, schema, task, args.out, dynamo=args.exporter == "dynamo")
    print(f"wrote {path}" + (f" and {path}.data" if Path(f"{path}.data").exists() else ""))
    return 0


def _infer_schema(train: Table, validation: Table, features: str | None, excluded: set[str]) -> FeatureSchema:
    """Integer columns become categorical ids (as many as the largest id in either table, plus one, read
    chunk by chunk), float columns dense values."""
    import pandas as pd

    from fusion.data.schema import CategoricalFeature, FeatureSchema
    from fusion.data.tables import largest_values, read_head

    columns = _csv(features) if features else [c for c in train.columns if c not in excluded]
    head = read_head(train, columns, 1)
    ids = [column for column in columns if pd.api.types.is_integer_dtype(head[column])]
    for column in columns:
        if column not in ids and not pd.api.types.is_float_dtype(head[column]):
            raise ValueError(f"column '{column}' is neither integer ids nor float values; encode it or --exclude it")
    largest = largest_values((train, validation), ids)
    categorical = tuple(CategoricalFeature(column, largest[column] + 1) for column in ids)
    return FeatureSchema(categorical, tuple(column for column in columns if column not in ids))


def _inspect(args: argparse.Namespace) -> int:
    from fusion.decompose import decompose, format_tree
    from fusion.intake.files import load_model_file

    loaded = load_model_file(args.model, args.weights)
    signature = loaded.signature
    print(f"{args.model.name}: opset {signature.opset}, producer '{signature.producer or '?'}'")
    print(f"inputs ({len(signature.inputs)}):")
    for spec in signature.inputs:
        extra = f", ids < {spec.cardinality}" if spec.cardinality else ""
        print(f"  {spec.name}: {spec.kind} {spec.dtype} width {spec.width}{extra}")
    kind = "probability" if signature.output_is_probability else "raw score"
    print(f"output: {signature.output_name} ({kind}, width {signature.output_width})")
    decomposition = decompose(loaded.model)
    print(format_tree(decomposition, title="components"))
    print(f"body components: {decomposition.body_leaf_count()}")
    return 0


def _fuse(args: argparse.Namespace) -> int:
    import onnx

    from fusion.akf.cache import ComponentCache
    from fusion.akf.pipeline import FusionSettings, fuse
    from fusion.akf.sources import FusionSource
    from fusion.intake.files import load_model_file

    spec = _read_spec(args.spec)
    tasks = [task_spec.to_task() for task_spec in spec.tasks]
    sources = []
    for task_spec in spec.tasks:
        for model_file in task_spec.models:
            sources.append(
                FusionSource(
                    name=model_file.name or model_file.path.stem,
                    task=task_spec.name,
                    loaded=load_model_file(model_file.path, model_file.weights),
                    input_columns={k: tuple(v) for k, v in model_file.input_columns.items()},
                )
            )
    settings = FusionSettings.from_plan(spec, args.device)
    progress = _ProgressLine()

    def stage_started(stage: str) -> None:
        progress.end()
        print(f"- {stage}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="fusebox-fuse-") as scratch:
        result = fuse(
            tasks,
            sources,
            _fusion_data(spec, Path(scratch)),
            settings,
            on_progress=progress,
            on_stage=stage_started,
            cache=ComponentCache(args.cache) if args.cache else None,
        )
    progress.end()
    spec.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(result.model, str(spec.output))
    print(result.report.format_table())
    print(f"wrote {spec.output}")
    if spec.report is not None:
        spec.report.write_text(json.dumps(result.report.to_dict(), indent=2))
        print(f"wrote {spec.report}")
    return 0


def _fusion_data(spec: FuseSpec, scratch: Path) -> FusionData:
    """The spec's splits as chunked tables; a validation fraction carves them out of the training table."""
    from fusion.akf.pipeline import FusionData
    from fusion.data.files import open_table
    from fusion.data.tables import split_table

    train = open_table(spec.data.train, scratch)
    if spec.data.validation is not None:
        validation = open_table(spec.data.validation, scratch)
    else:
        assert spec.data.validation_fraction is not None  # DataFiles asks for exactly one of the two
        train, validation = split_table(train, spec.data.validation_fraction, spec.hyperparameters.seed)
    test = open_table(spec.data.test, scratch) if spec.data.test else None
    return FusionData(train, validation, test)


def _read_spec(path: Path) -> FuseSpec:
    """A JSON or YAML spec file (JSON is YAML)."""
    import yaml

    from fusion.spec import FuseSpec

    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with 'tasks' and 'data'")
    return FuseSpec.model_validate(raw).relative_to(path.parent)


def _evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import onnx

    from fusion.data.files import open_table
    from fusion.metrics import task_metric
    from fusion.onnx_runtime import create_session, run_session
    from fusion.tasks import Task

    model = onnx.load(str(args.model))
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    if "fusebox.tasks" in metadata:
        tasks = [
            Task(t["name"], TaskType(t["type"]), t["name"], t.get("classes", 1))
            for t in json.loads(metadata["fusebox.tasks"])
        ]
        outputs = {task.name: task.name for task in tasks}
    else:
        tasks = [_parse_task(text) for text in args.task]
        if len(tasks) != 1:
            raise ValueError("a single-task model needs exactly one --task NAME:TYPE[:LABEL]")
        outputs = {tasks[0].name: model.graph.output[0].name}
    columns = json.loads(metadata.get("fusebox.input_columns", "{}"))
    session = create_session(model)
    inputs = {value.name: columns.get(value.name, [value.name]) for value in session.get_inputs()}
    wanted = list(dict.fromkeys([*(c for names in inputs.values() for c in names), *(t.label for t in tasks)]))
    # Only each row's predictions and labels are kept: a few bytes a row, whatever the table's width.
    predictions: dict[str, list[np.ndarray]] = {task.name: [] for task in tasks}
    labels: dict[str, list[np.ndarray]] = {task.name: [] for task in tasks}
    with tempfile.TemporaryDirectory(prefix="fusebox-evaluate-") as scratch:
        table = open_table(args.data, Path(scratch))
        for chunk in table.chunks:
            frame = table.read(chunk, wanted)
            feed = {}
            for value in session.get_inputs():
                dtype = np.int64 if "int" in value.type else np.float32
                array = frame[inputs[value.name]].to_numpy(dtype=dtype)
                feed[value.name] = array.reshape(-1) if len(value.shape) == 1 else array
            results = run_session(session, feed)
            for task in tasks:
                predictions[task.name].append(results[outputs[task.name]])
                labels[task.name].append(frame[task.label].to_numpy(dtype=np.float64))
    for task in tasks:
        metric = task_metric(task, np.concatenate(predictions[task.name]), np.concatenate(labels[task.name]))
        print(f"{task.name}: {task.metric_name} {metric:.4f}")
    return 0


def _parse_task(text: str) -> Task:
    from fusion.tasks import Task

    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"--task '{text}': write NAME:TYPE or NAME:TYPE:LABEL")
    return Task(name=parts[0], type=TaskType(parts[1]), label=parts[2] if len(parts) == 3 else parts[0])


def _csv(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class _ProgressLine:
    """One self-overwriting line on stderr: a bar, the epoch and loss; each epoch's validation metrics
    end the line so they stay on screen."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self, progress: Progress) -> None:
        width = 30
        filled = int(progress.fraction_done * width)
        line = f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.fraction_done:5.1%} "
        line += f"epoch {progress.epoch}/{progress.max_epochs} loss {progress.train_loss:.4f}"
        if progress.validation is not None:
            line += " | " + " ".join(f"{name} {value:.4f}" for name, value in progress.validation.items()) + "\n"
        sys.stderr.write(line)
        sys.stderr.flush()
        self.open = progress.validation is None

    def end(self) -> None:
        if self.open:
            sys.stderr.write("\n")
            self.open = False
