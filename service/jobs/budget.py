"""A job's memory estimate against the workers' budget, before it is queued.

The engine's estimator (fusion/budget.py) takes the job's shape; this module builds that shape from what
intake and the dataset upload recorded (component output shapes, parameter counts, input widths, rows), so
the API neither loads a model nor imports torch. The components fused at each level are picked as the
engine picks them, from the component outputs whose widths intake resolved.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from fusion.budget import JobShape, SourceShape, estimate_job, human_bytes
from service.jobs.schemas import JobCreate
from service.jobs.validation import ResolvedJob


def budget_problem(spec: JobCreate, resolved: ResolvedJob, budget_bytes: int) -> str | None:
    """What to change when the job would need more memory than a worker has (FUSEBOX_WORKER_MEMORY_BYTES)."""
    shape = job_shape(spec, resolved)
    estimate = estimate_job(shape)
    if estimate.peak_bytes <= budget_bytes:
        return None
    hp = spec.hyperparameters
    fitting = _largest_fitting_batch(shape, budget_bytes)
    batch_advice = (
        f"batch_size {fitting} or less would fit" if fitting else "no batch_size fits at this d_model and levels"
    )
    return (
        f"the job would need about {human_bytes(estimate.peak_bytes)} at its peak, over the worker memory budget "
        f"of {human_bytes(budget_bytes)} (FUSEBOX_WORKER_MEMORY_BYTES): {estimate.describe()}. Lower batch_size "
        f"(now {hp.batch_size}, "
        f"{batch_advice}), d_model (now {hp.d_model}), heads (now {hp.heads}), levels (now {hp.levels}) "
        f"or tower_hidden (now {hp.tower_hidden}), or run it on workers with more memory"
    )


def job_shape(spec: JobCreate, resolved: ResolvedJob) -> JobShape:
    """Only for a job whose models and datasets all resolved (no problems)."""
    levels = spec.hyperparameters.levels
    task_index = {task.name: i for i, task in enumerate(spec.tasks)}
    models = resolved.models
    sources = tuple(
        source_shape(models[ref.id].signature, models[ref.id].decomposition, task_index[task.name], levels)
        for task in spec.tasks
        for ref in task.models
    )
    train_rows = resolved.datasets["train"].rows
    if spec.validation_fraction is not None:
        validation_rows = round(train_rows * spec.validation_fraction)
        train_rows -= validation_rows
    else:
        validation_rows = resolved.datasets["validation"].rows
    test = resolved.datasets.get("test")
    return JobShape(
        task_widths=tuple(task.output_width for task in spec.tasks),
        sources=sources,
        train_rows=train_rows,
        validation_rows=validation_rows,
        test_rows=test.rows if test is not None else 0,
        strategy=spec.strategy,
        hyperparameters=spec.hyperparameters,
    )


def source_shape(signature: dict[str, Any], decomposition: dict[str, Any], task: int, levels: int) -> SourceShape:
    """A source model as intake recorded it: its signature and its decomposition's summary."""
    input_width = sum(int(spec["width"]) for spec in signature["inputs"])
    spine = _spine_widths(decomposition["components"])
    known = [width for width in spine if width is not None]
    # A width intake could not resolve (a symbolic shape) is taken as the widest known: the estimate errs high.
    widths = [width if width is not None else max(known, default=input_width) for width in spine]
    return SourceShape(
        task=task,
        level_widths=_level_picks(widths or [input_width], levels),
        output_width=int(signature["output_width"]),
        parameters=int(decomposition["parameter_count"]),
        input_width=input_width,
        activation_width=sum(widths) or input_width,
    )


def _spine_widths(components: list[dict[str, Any]]) -> list[int | None]:
    """The widths of the representations fusion.decompose's spine holds, shallow to deep, as far as the stored
    summary shows them: the top-level chain's outputs, and inside a parallel component its deepest branch's
    (the head, whose output is the score, and 1-D tensors excluded). None: a shape intake could not resolve."""
    widths: dict[str, int | None] = {}

    def visit(component: dict[str, Any]) -> None:
        if component["role"] == "head":
            return
        children = component["children"]
        for child in [max(children, key=_size)] if component["parallel"] and children else children:
            visit(child)
        for output in component["outputs"]:
            shape = output["shape"]
            if shape is not None and len(shape) < 2:
                continue
            known = shape is not None and all(isinstance(size, int) for size in shape[1:])
            widths.setdefault(output["name"], math.prod(shape[1:]) if known else None)

    for component in components:
        visit(component)
    return list(widths.values())


def _size(component: dict[str, Any]) -> int:
    """Components in the subtree: the deepest of parallel branches has the most."""
    return 1 + sum(_size(child) for child in component["children"])


def _level_picks(widths: list[int], levels: int) -> tuple[int, ...]:
    """fusion.akf.sources.plan_levels's rule, spreading the levels evenly over the representations."""
    return tuple(widths[math.ceil(level * len(widths) / levels) - 1] for level in range(1, levels + 1))


def _largest_fitting_batch(shape: JobShape, budget_bytes: int) -> int:
    """The largest batch_size (up to the job's) that fits the budget, 0 if none; the estimate grows with it."""
    low, high = 0, min(shape.hyperparameters.batch_size, max(shape.train_rows, 1))
    while low < high:
        middle = (low + high + 1) // 2
        trial = replace(shape, hyperparameters=shape.hyperparameters.model_copy(update={"batch_size": middle}))
        if estimate_job(trial).peak_bytes <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low
