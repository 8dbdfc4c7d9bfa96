"""The fusion report: per task, each source model alone vs the fused model vs any baselines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fusion.report_table import format_report_table


@dataclass
class Score:
    validation: float
    test: float | None = None
    train: float | None = None
    """Source models only: the metric on the first fusion training rows (seen_rows.py), to compare with
    `validation`: far better there means the source has been trained on those rows."""


@dataclass
class TaskReport:
    task: str
    metric: str
    sources: dict[str, Score]
    fused: Score
    """The fused head's own score."""
    exported: Score
    """What the exported model answers for this task: the fused head, or the fallback source model."""
    answered_by: str
    """'fused', or the name of the source model the task fell back to (no-regression rule)."""
    baselines: dict[str, Score] = field(default_factory=dict)

    @property
    def fell_back(self) -> bool:
        return self.answered_by != "fused"

    @property
    def best_source(self) -> str:
        return max(self.sources, key=lambda name: self.sources[name].validation)


@dataclass
class FusionReport:
    strategy: str
    tasks: list[TaskReport]
    best_epoch: int
    epochs_run: int
    history: list[dict]
    training_seconds: float
    total_seconds: float
    rows_per_second: float
    trainable_parameters: int
    total_parameters: int
    export_max_abs_diff: float = 0.0
    """Largest difference between the exported ONNX model and the trained model on validation rows."""
    component_outputs: str = ""
    """Where the source components' outputs were kept during the job, and their size."""
    baseline_failures: dict[str, str] = field(default_factory=dict)
    """Baselines that could not be trained -> why; the fused model is exported all the same."""
    seen_rows_warnings: list[str] = field(default_factory=list)
    """One line per source model that scores the fusion's training rows far better than the validation
    rows (it has likely been trained on them), saying what to change."""
    notes: list[str] = field(default_factory=list)

    @property
    def fallbacks(self) -> dict[str, str]:
        return {task.task: task.answered_by for task in self.tasks if task.fell_back}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fallbacks"] = self.fallbacks
        return _finite(data)

    def format_table(self) -> str:
        """A plain-text table: one row per (task, model), validation and test metric."""
        return format_report_table(self.to_dict())


def _finite(value: Any) -> Any:
    """JSON has no NaN: metrics that could not be computed become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
