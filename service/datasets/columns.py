"""Checks on a table's column names, the same whichever way the table arrives (CSV header, Parquet schema)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

from service.core.errors import Unprocessable
from service.datasets.limits import MAX_COLUMN_NAME_CHARACTERS


def check_names(names: Sequence[str], max_columns: int) -> None:
    if len(names) > max_columns:
        raise Unprocessable(f"The table has {len(names):,} columns; at most {max_columns:,} are accepted.")
    blank = [i + 1 for i, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise Unprocessable(f"Column(s) {few(blank)} have no name. Give every column a name in the header.")
    long = [i + 1 for i, name in enumerate(names) if len(name) > MAX_COLUMN_NAME_CHARACTERS]
    if long:
        raise Unprocessable(
            f"Column(s) {few(long)} have names longer than {MAX_COLUMN_NAME_CHARACTERS} characters. "
            "Give them shorter names."
        )
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise Unprocessable(f"Column name(s) {few(repeated)} appear more than once. Make column names unique.")


def check_labels_known(names: Collection[str], label_columns: Collection[str]) -> None:
    unknown = sorted(set(label_columns) - set(names))
    if unknown:
        raise Unprocessable(f"label_columns names column(s) {few(unknown)} that the table does not have.")


def few(items: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(f"'{item}'" if isinstance(item, str) else str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
