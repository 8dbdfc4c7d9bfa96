"""Plain-text tables, and the fusion report as one: standard library only, so that the client (which has
neither torch nor numpy) prints a job's report with the same code as the engine."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns under a dashed rule; floats with 4 decimals, None and NaN as '-'."""
    cells = [list(map(str, header)), *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_report_table(report: Mapping[str, Any]) -> str:
    """A fusion report as FusionReport.to_dict() writes it (and a job's `report` carries it): one row
    per task and model with its validation and test metric (and, for source models, the metric on the
    first training rows), then a summary line, any warnings and any notes."""
    rows = []
    for task in report["tasks"]:
        name, metric = task["task"], task["metric"]
        scored = [(f"source {source}", score) for source, score in task["sources"].items()]
        scored += [(f"baseline {baseline}", score) for baseline, score in task["baselines"].items()]
        scored.append(("fused head", task["fused"]))
        rows += [
            (name, model, metric, score["validation"], score["test"], score.get("train"), "") for model, score in scored
        ]
        answered_by = task["answered_by"]
        mark = "fused head" if answered_by == "fused" else f"{answered_by} (fallback)"
        exported = task["exported"]
        rows.append((name, "exported model", metric, exported["validation"], exported["test"], None, mark))
    table = format_table(("task", "model", "metric", "validation", "test", "train", "answered by"), rows)
    summary = (
        f"strategy {report['strategy']}: best epoch {report['best_epoch']} of {report['epochs_run']}, "
        f"training {report['training_seconds']:.1f}s ({report['rows_per_second']:,.0f} rows/s), "
        f"total {report['total_seconds']:.1f}s, "
        f"parameters trainable {report['trainable_parameters']:,} / total {report['total_parameters']:,}, "
        f"export max abs diff {report['export_max_abs_diff']:.1e}"
    )
    warnings = [f"warning: {line}" for line in report.get("seen_rows_warnings", [])]
    return "\n".join([table, summary, *warnings, *report.get("notes", [])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, list):
        return " ".join(_cell(item) for item in value)
    return "-" if value is None else str(value)
