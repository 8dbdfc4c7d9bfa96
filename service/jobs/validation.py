"""Checks of a job spec against the stored models and datasets, before anything is queued.

The same rules as the engine's fusion.akf.validation (which the worker runs again on the real data),
but on the column statistics recorded at upload, so the API neither reads the data nor imports torch.
Every problem is collected, one message each, saying what to change.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.datasets.models import Dataset
from service.datasets.references import change_message
from service.jobs.schemas import JobCreate, JobTask, SourceRef
from service.models.models import UploadedModel


@dataclass(frozen=True)
class ResolvedJob:
    """The spec with its models and datasets loaded; only complete when there are no problems."""

    models: dict[uuid.UUID, UploadedModel]
    datasets: dict[str, Dataset]
    problems: list[str]


def resolve_and_check(session: Session, tenant_id: str, spec: JobCreate, data_root: Path) -> ResolvedJob:
    """`data_root`: where referenced datasets lie, to refuse one whose files changed since registration."""
    problems: list[str] = []
    models = _load_models(session, tenant_id, spec, problems)
    datasets = _load_datasets(session, tenant_id, spec, data_root, problems)
    problems += [
        f"task name '{name}' is used twice" for name, n in Counter(t.name for t in spec.tasks).items() if n > 1
    ]
    bindings: dict[str, tuple[Any, ...]] = {}
    for task in spec.tasks:
        for ref in task.models:
            model = models.get(ref.id)
            if model is not None:
                problems += _check_model_fits_task(model, ref, task)
                problems += _check_shared_inputs(model, ref, bindings)
    for split, dataset in datasets.items():
        columns = {column["name"]: column for column in dataset.columns}
        for task in spec.tasks:
            problems += _check_labels(task, columns, split)
            for ref in task.models:
                if ref.id in models:
                    problems += _check_features(models[ref.id], ref, columns, split)
    if spec.validation_fraction is not None and "train" in datasets:
        held_out = round(datasets["train"].rows * spec.validation_fraction)
        if not 1 <= held_out < datasets["train"].rows:
            problems.append("validation_fraction leaves no validation or no training rows; upload more rows")
    return ResolvedJob(models=models, datasets=datasets, problems=list(dict.fromkeys(problems)))


def _load_models(
    session: Session, tenant_id: str, spec: JobCreate, problems: list[str]
) -> dict[uuid.UUID, UploadedModel]:
    wanted = [ref.id for task in spec.tasks for ref in task.models]
    problems += [f"model {model_id} is listed more than once" for model_id, n in Counter(wanted).items() if n > 1]
    found = session.scalars(
        select(UploadedModel).where(UploadedModel.tenant_id == tenant_id, UploadedModel.id.in_(wanted))
    ).all()
    models = {model.id: model for model in found}
    problems += [f"model {model_id} does not exist" for model_id in dict.fromkeys(wanted) if model_id not in models]
    return models


def _load_datasets(
    session: Session, tenant_id: str, spec: JobCreate, data_root: Path, problems: list[str]
) -> dict[str, Dataset]:
    datasets = {}
    for split, dataset_id in (
        ("train", spec.dataset_id),
        ("validation", spec.validation_dataset_id),
        ("test", spec.test_dataset_id),
    ):
        if dataset_id is None:
            continue
        dataset = session.get(Dataset, dataset_id)
        if dataset is None or dataset.tenant_id != tenant_id:
            problems.append(f"{split} dataset {dataset_id} does not exist")
            continue
        changed = change_message(dataset.name, dataset.files, data_root) if dataset.files is not None else None
        if changed:
            problems.append(changed)
        else:
            datasets[split] = dataset
    return datasets


def _check_model_fits_task(model: UploadedModel, ref: SourceRef, task: JobTask) -> list[str]:
    problems = []
    if model.task_type != task.type:
        problems.append(
            f"model '{model.name}' was uploaded for a {model.task_type} task; task '{task.name}' is {task.type}"
        )
    elif model.signature["output_width"] != task.output_width:
        problems.append(
            f"model '{model.name}' outputs {model.signature['output_width']} value(s) per row but task "
            f"'{task.name}' needs {task.output_width}"
        )
    inputs = {spec["name"]: spec for spec in model.signature["inputs"]}
    for name, columns in ref.input_columns.items():
        if name not in inputs:
            problems.append(f"input_columns of model '{model.name}' names '{name}', which is not one of its inputs")
        elif len(columns) != inputs[name]["width"]:
            problems.append(
                f"model '{model.name}': input '{name}' takes {inputs[name]['width']} value(s) per row; "
                f"input_columns names {len(columns)}"
            )
    for spec in inputs.values():
        if spec["width"] > 1 and spec["name"] not in ref.input_columns:
            problems.append(
                f"model '{model.name}': input '{spec['name']}' takes {spec['width']} values per row; "
                "name its columns in input_columns"
            )
    return problems


def _check_shared_inputs(model: UploadedModel, ref: SourceRef, bindings: dict[str, tuple[Any, ...]]) -> list[str]:
    """The fused model has one input per name, so models sharing an input name must agree on it."""
    problems = []
    for spec in model.signature["inputs"]:
        binding = (spec["dtype"], spec["width"], tuple(_columns(ref, spec)), model.name)
        previous = bindings.setdefault(spec["name"], binding)
        if previous[:3] != binding[:3]:
            problems.append(
                f"models '{previous[3]}' and '{model.name}' both have an input '{spec['name']}' but of different "
                "types or columns; rename one of them when exporting"
            )
    return problems


def _check_features(model: UploadedModel, ref: SourceRef, columns: dict[str, dict], split: str) -> list[str]:
    problems = []
    for spec in model.signature["inputs"]:
        for name in _columns(ref, spec):
            column = columns.get(name)
            if column is None:
                problems.append(f"the {split} data lacks column '{name}', which model '{model.name}' reads")
            elif column["missing"]:
                problems.append(f"{split} column '{name}' has missing values; model '{model.name}' needs every value")
            elif spec["kind"] == "categorical":
                problems += _check_ids(column, spec, model.name, split)
    return problems


def _check_ids(column: dict, spec: dict, model: str, split: str) -> list[str]:
    name, low, high, cardinality = column["name"], column["min"], column["max"], spec["cardinality"]
    if not column["integer_valued"]:
        return [f"{split} column '{name}' holds category ids for model '{model}' and must hold whole numbers"]
    if low < 0 or (cardinality is not None and high >= cardinality):
        known = f"0..{cardinality - 1}" if cardinality is not None else "0 or more"
        return [
            f"{split} column '{name}' has ids {int(low)}..{int(high)} but model '{model}' knows ids {known}; "
            "map unseen categories to a known id"
        ]
    return []


def _check_labels(task: JobTask, columns: dict[str, dict], split: str) -> list[str]:
    label = task.label_column
    column = columns.get(label)
    if column is None:
        return [f"the {split} data lacks label column '{label}' of task '{task.name}'"]
    if column["min"] is None:
        return [f"{split} label column '{label}' of task '{task.name}' has no labels at all"]
    if task.type == "binary" and (column["values"] is None or not set(column["values"]) <= {0.0, 1.0}):
        found = sorted(set(column["values"]) - {0.0, 1.0})[:5] if column["values"] else "many distinct values"
        return [f"{split} label column '{label}' of binary task '{task.name}' must hold 0 or 1, found {found}"]
    if task.type == "multiclass" and not (
        column["integer_valued"] and column["min"] >= 0 and column["max"] < task.output_width
    ):
        return [
            f"{split} label column '{label}' of task '{task.name}' must hold class ids 0..{task.output_width - 1}, "
            f"found values from {column['min']:g} to {column['max']:g}"
        ]
    return []


def _columns(ref: SourceRef, spec: dict) -> list[str]:
    return ref.input_columns.get(spec["name"], [spec["name"]])
