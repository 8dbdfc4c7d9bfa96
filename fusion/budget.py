"""What a fusion job will cost before it runs: its peak memory and its compute, from its shape alone.

A job's memory is set by its spec, not by its data's size: parameters (with their gradients, Adam's two
moments and the best epoch's copy), the activations one training step keeps for its backward pass (the
attention's [batch, tasks, tokens, d_model] products dominate them), the shuffle buffer, and the fixed
cost of the runtime. Rows matter only where a batch or the buffer would be larger than the data. The API
runs this on the widths intake recorded, to refuse a job a worker could not hold before queueing it;
so it is plain arithmetic, free of torch, and errs on the generous side (an estimate, within a small
factor of a measured peak: tests/test_budget.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fusion.spec import Hyperparameters, Strategy

FLOAT_BYTES = 4
RUNTIME_BYTES = 600 * 2**20
"""A job process before any work: the interpreter with torch, ONNX Runtime, pandas and Arrow loaded."""
SHUFFLE_BUFFER_ROWS = 131_072
"""fusion.training.TrainConfig.buffer_rows: rows shuffled together (at least one batch)."""
SCORING_BATCH_ROWS = 8192
"""fusion.training.score's batch: validation runs without gradients, in batches of this many rows."""
FFN_MULTIPLIER = 2
"""fusion.akf.model.AKFConfig.ffn_multiplier."""
_STATE_COPIES = 6
"""Copies of each trained parameter: weights, gradient, Adam's two moments, the best epoch's weights, and
the one a checkpoint serialises."""
_BUFFER_COPIES = 2
"""The shuffle buffer, and the chunk being copied into it (chunks are row groups: rarely larger than a buffer)."""


@dataclass(frozen=True)
class SourceShape:
    """One source model as fusion sees it."""

    task: int
    """Index of its task in JobShape.task_widths."""
    level_widths: tuple[int, ...]
    """Flattened width of the component output fused at each level (fusion.akf.sources.plan_levels)."""
    output_width: int = 1
    parameters: int = 0
    input_width: int = 1
    """Values per row the model reads (its input columns)."""
    activation_width: int = 0
    """Values per row its components compute in all: what running it inside training (adaptive strategies) keeps."""


@dataclass(frozen=True)
class JobShape:
    task_widths: tuple[int, ...]
    """Output width of each task: 1, or its number of classes."""
    sources: tuple[SourceShape, ...]
    train_rows: int
    validation_rows: int
    test_rows: int = 0
    strategy: Strategy = Strategy.FROZEN
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)


@dataclass(frozen=True)
class JobEstimate:
    """Bytes at the peak, by part, and floating-point operations of one training epoch."""

    parameter_bytes: int
    activation_bytes: int
    data_bytes: int
    runtime_bytes: int
    parameters: int
    flops_per_epoch: float

    @property
    def peak_bytes(self) -> int:
        return self.parameter_bytes + self.activation_bytes + self.data_bytes + self.runtime_bytes

    def describe(self) -> str:
        """The parts of the peak, and the compute."""
        return (
            f"{self.parameters:,} parameters with their optimiser state {human_bytes(self.parameter_bytes)}, "
            f"activations of one batch {human_bytes(self.activation_bytes)}, data buffers "
            f"{human_bytes(self.data_bytes)}, runtime {human_bytes(self.runtime_bytes)}; "
            f"{self.flops_per_epoch / 1e12:.3g} TFLOP per epoch"
        )


def estimate_job(shape: JobShape) -> JobEstimate:
    """The job's peak memory: training's or scoring's activations, whichever is larger, on top of the
    parameters, the data buffers and the runtime, which are there throughout."""
    hp = shape.hyperparameters
    levels = [_level_widths(shape, level) for level in range(hp.levels)]
    adaptive = shape.strategy != Strategy.FROZEN
    fusion = _fusion_parameters(shape, levels, adaptive)
    trained = fusion + (sum(s.parameters for s in shape.sources) if shape.strategy == Strategy.FINETUNE else 0)
    frozen = sum(s.parameters for s in shape.sources) if adaptive and shape.strategy != Strategy.FINETUNE else 0
    batch = max(1, min(hp.batch_size, shape.train_rows))
    scoring_batch = max(1, min(SCORING_BATCH_ROWS, max(shape.validation_rows, shape.test_rows)))
    training = _step_activations(shape, levels, batch, adaptive, kept=True)
    scoring = _step_activations(shape, levels, scoring_batch, adaptive, kept=False)
    return JobEstimate(
        parameter_bytes=FLOAT_BYTES * (_STATE_COPIES * trained + frozen),
        activation_bytes=FLOAT_BYTES * max(training, scoring),
        data_bytes=FLOAT_BYTES * _data_values(shape, levels, batch, adaptive),
        runtime_bytes=RUNTIME_BYTES,
        parameters=fusion,
        flops_per_epoch=3 * 2 * _multiply_adds_per_row(shape, levels, adaptive) * shape.train_rows,
    )


def _level_widths(shape: JobShape, level: int) -> list[int]:
    """Each source's component width at `level` (a source with fewer recorded widths repeats its deepest)."""
    return [s.level_widths[min(level, len(s.level_widths) - 1)] if s.level_widths else 1 for s in shape.sources]


def _fusion_parameters(shape: JobShape, levels: list[list[int]], adaptive: bool) -> int:
    """fusion.akf.model.AKFusion's parameters."""
    d, tasks, sources = shape.hyperparameters.d_model, len(shape.task_widths), len(shape.sources)
    hidden = FFN_MULTIPLIER * d
    per_level = (
        (2 * d * d + 2 * d)  # component keys and values
        + (d * sources + sources)  # gate
        + (3 * d * d + 3 * d)  # task queries, keys, values
        + (d * d + d)  # attention output
        + 4 * d  # two layer norms
        + (d * hidden + hidden + hidden * d + d)  # feed-forward
    )
    projections = sum((width + 1) * d for widths in levels for width in widths)
    adapters = sum((d + 1) * width for widths in levels[:-1] for width in widths) if adaptive else 0
    tower = shape.hyperparameters.tower_hidden
    towers = sum(d * tower + tower + tower * width + width for width in shape.task_widths)
    return tasks * d + len(levels) * per_level + projections + adapters + towers + sources


def _step_activations(shape: JobShape, levels: list[list[int]], batch: int, adaptive: bool, kept: bool) -> int:
    """Values one step holds at once. Training (`kept`) keeps every level's intermediates for the backward
    pass, plus gradients as large as the largest of them; scoring holds one level's at a time."""
    hp = shape.hyperparameters
    d, heads, tasks, sources = hp.d_model, hp.heads, len(shape.task_widths), len(shape.sources)
    tokens = tasks + sources
    # Broadcast products, head-weighted copies, weighted values, softmax inputs: each [batch, tasks, tokens, d].
    attention = 4 * tasks * tokens * d + 2 * tasks * tokens * heads
    per_level = (
        attention
        + 3 * sources * d  # component tokens, their keys and values
        + 2 * tokens * d  # keys and values of all tokens
        + 3 * tasks * sources  # gate
        + (6 + 2 * FFN_MULTIPLIER + 3) * tasks * d  # states, norms, queries, keys, values, feed-forward
    )
    towers = 2 * tasks * hp.tower_hidden + 2 * sum(shape.task_widths)
    sources_run = 2 * sum(s.activation_width for s in shape.sources) if adaptive else 0
    if not kept:
        return batch * (per_level + towers + sources_run // 2)
    return batch * (len(levels) * per_level + towers + sources_run + 2 * tasks * tokens * d)


def _data_values(shape: JobShape, levels: list[list[int]], batch: int, adaptive: bool) -> int:
    """The shuffle buffer (at least a batch, at most the data), and the predictions and labels that scoring keeps."""
    if adaptive:
        row = sum(s.input_width for s in shape.sources)
    else:
        row = sum(sum(widths) for widths in levels) + sum(s.output_width for s in shape.sources)
    row += len(shape.task_widths)
    buffer_rows = min(max(SHUFFLE_BUFFER_ROWS, batch), shape.train_rows)
    scored = 2 * (shape.validation_rows + shape.test_rows) * (sum(shape.task_widths) + len(shape.task_widths))
    return _BUFFER_COPIES * buffer_rows * row + scored


def _multiply_adds_per_row(shape: JobShape, levels: list[list[int]], adaptive: bool) -> int:
    """One forward pass of one row (a training step costs about three: forward, and two for backward)."""
    hp = shape.hyperparameters
    d, heads, tasks, sources = hp.d_model, hp.heads, len(shape.task_widths), len(shape.sources)
    tokens = tasks + sources
    per_level = (
        2 * sources * d * d  # component keys and values
        + tasks * d * sources * 2  # gate and mixture
        + 4 * tasks * d * d  # queries, keys, values, output
        + 2 * FFN_MULTIPLIER * tasks * d * d  # feed-forward
        + 2 * tasks * tokens * d  # attention products and weighted values
        + 2 * tasks * tokens * d * heads  # per-head sums (one-hot matrix products)
    )
    projections = sum(width * d for widths in levels for width in widths)
    towers = sum(d * hp.tower_hidden + hp.tower_hidden * width for width in shape.task_widths)
    sources_run = sum(s.parameters for s in shape.sources) if adaptive else 0
    return len(levels) * per_level + projections + towers + sources_run


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
