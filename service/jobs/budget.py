"""A job's memory estimate against the workers' budget, before it is queued.

The engine's estimator (fusion/budget.py) takes the job's shape; this module builds that shape from what
intake and the dataset upload recorded (component output shapes, parameter counts, input widths, rows), so
the API neither loads a model nor imports torch. The components fused at each level are picked as the
engine picks them, from the component outputs whose widths intake resolved.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from fusion.budget import JobShape, SourceShape, estimate_job, human_bytes
from service.jobs.schemas import JobCreate
from service.jobs.validation import ResolvedJob
from service.models.models import UploadedModel


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
    sources = tuple(
        _source_shape(resolved.models[ref.id], task_index[task.name], levels)
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


def _source_shape(model: UploadedModel, task: int, levels: int) -> SourceShape:
    input_width = sum(int(spec["width"]) for spec in model.signature["inputs"])
    widths = [width for component in model.decomposition["components"] for width in _depth_widths(component)]
    return SourceShape(
        task=task,
        level_widths=_level_picks(widths or [input_width], levels),
        output_width=int(model.signature["output_width"]),
        parameters=int(model.decomposition["parameter_count"]),
        input_width=input_width,
        activation_width=sum(widths) or input_width,
    )


def _depth_widths(component: dict[str, Any]) -> Iterator[int]:
    """Values per row of the outputs intake could resolve, shallow to deep: a component's children come
    before its own output; the head, whose output is the score, is not fused."""
    for child in component["children"]:
        yield from _depth_widths(child)
    if component["role"] == "head":
        return
    for output in component["outputs"]:
        shape = output["shape"]
        if shape and all(isinstance(size, int) for size in shape[1:]):
            yield math.prod(shape[1:])


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
