"""The Markdown tables the benches print (and closing notes quote)."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells padded to their column's width, under a header and its rule."""
    cells = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def auc_cell(value: float) -> str:
    """An AUC to 4 decimals, '-' for NaN (a model that does not answer that task)."""
    return "-" if value != value else f"{value:.4f}"
