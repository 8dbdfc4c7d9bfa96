"""Checks of a fusion's inputs before any work starts, each problem stated with what to change."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from fusion.akf.sources import FusionSource
from fusion.data.tables import Table
from fusion.intake import InputSpec
from fusion.tasks import Task, TaskType


class FusionInputError(ValueError):
    """Every problem found, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def check_fusion_inputs(tasks: list[Task], sources: list[FusionSource], splits: dict[str, Table]) -> None:
    """Splits are read chunk by chunk: one pass over each, in the memory of one chunk."""
    problems = check_tasks_and_sources(tasks, sources)
    if not problems:
        for split, table in splits.items():
            problems += check_table(tasks, sources, table, split)
    if problems:
        raise FusionInputError(problems)


def check_tasks_and_sources(tasks: list[Task], sources: list[FusionSource]) -> list[str]:
    problems = []
    if not tasks:
        problems.append("name at least one task")
    problems += [f"task name '{n}' is used twice; task names must be unique" for n in _repeated(t.name for t in tasks)]
    problems += [
        f"model name '{n}' is used twice; give each source model its own name"
        for n in _repeated(s.name for s in sources)
    ]
    by_name = {task.name: task for task in tasks}
    for source in sources:
        task = by_name.get(source.task)
        if task is None:
            problems.append(
                f"model '{source.name}' is for task '{source.task}', which is not among the tasks {list(by_name)}"
            )
        elif source.signature.output_width != task.output_width:
            problems.append(
                f"model '{source.name}' outputs {source.signature.output_width} value(s) per row but task "
                f"'{task.name}' ({task.type.value}) needs {task.output_width}"
            )
    for task in tasks:
        if not any(source.task == task.name for source in sources):
            problems.append(f"task '{task.name}' has no source model; give it at least one")
    first_use: dict[str, tuple[FusionSource, object]] = {}
    for source in sources:
        for spec in source.signature.inputs:
            binding = (spec.dtype, spec.width, source.columns_of(spec.name))
            if spec.name in first_use and first_use[spec.name][1] != binding:
                other = first_use[spec.name][0]
                problems.append(
                    f"models '{other.name}' and '{source.name}' both have an input '{spec.name}' but of different "
                    f"types or columns; rename one of them when exporting"
                )
            first_use.setdefault(spec.name, (source, binding))
    return problems


def check_table(tasks: list[Task], sources: list[FusionSource], table: Table, split: str) -> list[str]:
    """Columns present, feature values usable by every model, labels that fit their task type."""
    if table.num_rows == 0:
        return [f"the {split} data has no rows"]
    problems = []
    features = []
    for source in sources:
        for spec in source.signature.inputs:
            for column in source.columns_of(spec.name):
                if column not in table.columns:
                    problems.append(f"the {split} data lacks column '{column}', which model '{source.name}' reads")
                else:
                    features.append((column, spec, source.name))
    labelled = [task for task in tasks if task.label in table.columns]
    problems += [
        f"the {split} data lacks label column '{task.label}' of task '{task.name}'"
        for task in tasks
        if task not in labelled
    ]
    columns = list(dict.fromkeys([*(column for column, _, _ in features), *(task.label for task in labelled)]))
    labels_seen = dict.fromkeys((task.name for task in labelled), 0)
    flagged: set[tuple[str, str]] = set()  # one problem per (column, reader) is enough, however many chunks repeat it
    for chunk in table.chunks:
        frame = table.read(chunk, columns)
        for column, spec, model in features:
            found = [] if (column, model) in flagged else _check_feature(frame[column], spec, model, split)
            flagged |= {(column, model)} if found else set()
            problems += found
        for task in labelled:
            found = [] if (task.label, task.name) in flagged else _check_labels(frame[task.label], task, split)
            flagged |= {(task.label, task.name)} if found else set()
            problems += found
            labels_seen[task.name] += int(frame[task.label].notna().sum())
    problems += [
        f"{split} label column '{task.label}' of task '{task.name}' has no labels at all"
        for task in labelled
        if labels_seen[task.name] == 0
    ]
    return list(dict.fromkeys(problems))


def _check_feature(column: pd.Series, spec: InputSpec, model: str, split: str) -> list[str]:
    name = column.name
    if not pd.api.types.is_numeric_dtype(column):
        return [f"{split} column '{name}' must be numeric for model '{model}', not {column.dtype}"]
    values = column.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        return [f"{split} column '{name}' has missing, NaN or infinite values; model '{model}' needs every value"]
    if spec.kind != "categorical":
        return []
    if not np.array_equal(values, np.round(values)):
        return [f"{split} column '{name}' holds category ids for model '{model}' and must hold whole numbers"]
    low, high = int(values.min()), int(values.max())
    if low < 0 or (spec.cardinality is not None and high >= spec.cardinality):
        limit = f"0..{spec.cardinality - 1}" if spec.cardinality is not None else "0 or more"
        return [
            f"{split} column '{name}' has ids {low}..{high} but model '{model}' knows ids {limit}; "
            f"map unseen categories to a known id"
        ]
    return []


def _check_labels(column: pd.Series, task: Task, split: str) -> list[str]:
    if not pd.api.types.is_numeric_dtype(column):
        return [f"{split} label column '{task.label}' must be numeric, not {column.dtype}"]
    values = column.to_numpy(dtype=np.float64)
    if np.isinf(values).any():
        return [f"{split} label column '{task.label}' has infinite values"]
    present = values[~np.isnan(values)]
    if task.type == TaskType.BINARY and not np.isin(present, (0.0, 1.0)).all():
        found = sorted(set(present.tolist()) - {0.0, 1.0})[:5]
        return [f"{split} label column '{task.label}' of binary task '{task.name}' must hold 0 or 1, found {found}"]
    if task.type == TaskType.MULTICLASS:
        valid = (present == np.round(present)) & (present >= 0) & (present < task.num_classes)
        if not valid.all():
            found = sorted(set(present[~valid].tolist()))[:5]
            return [
                f"{split} label column '{task.label}' of task '{task.name}' must hold class ids "
                f"0..{task.num_classes - 1}, found {found}"
            ]
    return []


def _repeated(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated = []
    for name in names:
        if name in seen:
            repeated.append(name)
        seen.add(name)
    return repeated
