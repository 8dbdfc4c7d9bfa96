"""The fusion report: per task, each source model alone vs the fused model vs any baselines."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass
class Score:
    validation: float
    test: float | None = None


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
    notes: list[str] = field(default_factory=list)

    @property
    def fallbacks(self) -> dict[str, str]:
        return {task.task: task.answered_by for task in self.tasks if task.fell_back}

    def to_dict(self) -> dict:
        data = asdict(self)
        data["fallbacks"] = self.fallbacks
        return _finite(data)

    @classmethod
    def from_dict(cls, data: dict) -> FusionReport:
        tasks = [
            TaskReport(
                task=t["task"],
                metric=t["metric"],
                sources={name: Score(**score) for name, score in t["sources"].items()},
                fused=Score(**t["fused"]),
                exported=Score(**t["exported"]),
                answered_by=t["answered_by"],
                baselines={name: Score(**score) for name, score in t["baselines"].items()},
            )
            for t in data["tasks"]
        ]
        fields = {k: v for k, v in data.items() if k not in {"tasks", "fallbacks"}}
        return cls(tasks=tasks, **fields)

    def format_table(self) -> str:
        """A plain-text table: one row per (task, model), validation and test metric."""
        rows = [("task", "model", "metric", "validation", "test", "")]
        for task in self.tasks:
            for name, score in task.sources.items():
                rows.append((task.task, f"source {name}", task.metric, _num(score.validation), _num(score.test), ""))
            for name, score in task.baselines.items():
                rows.append((task.task, f"baseline {name}", task.metric, _num(score.validation), _num(score.test), ""))
            rows.append((task.task, "fused head", task.metric, _num(task.fused.validation), _num(task.fused.test), ""))
            mark = f"fallback to {task.answered_by}" if task.fell_back else "fused"
            rows.append(
                (
                    task.task,
                    "exported model",
                    task.metric,
                    _num(task.exported.validation),
                    _num(task.exported.test),
                    mark,
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * width for width in widths))
        summary = (
            f"strategy {self.strategy}: best epoch {self.best_epoch} of {self.epochs_run}, "
            f"training {self.training_seconds:.1f}s ({self.rows_per_second:,.0f} rows/s), "
            f"total {self.total_seconds:.1f}s, "
            f"parameters trainable {self.trainable_parameters:,} / total {self.total_parameters:,}, "
            f"export max abs diff {self.export_max_abs_diff:.1e}"
        )
        return "\n".join([*lines, summary, *self.notes])


def _num(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _finite(value):
    """JSON has no NaN: metrics that could not be computed become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
