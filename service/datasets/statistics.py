"""Per-column statistics gathered batch by batch, in memory that does not grow with the row count.

One implementation for every way a table arrives (an uploaded CSV or Parquet file, Parquet files read in
place), each read a batch at a time: the values job validation reads later, and what the dataset checks refuse
(infinite values, missing values outside label columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from service.core.errors import Unprocessable

MAX_LISTED_VALUES = 32
"""Columns with at most this many distinct values keep them in their statistics (labels, small ids)."""

BATCH_BYTES = 32 * 2**20
"""What one batch of a table takes as float64, whatever its width: wide tables get fewer rows a batch."""


def batch_rows(columns: int) -> int:
    return max(1_024, min(65_536, BATCH_BYTES // (8 * max(columns, 1))))


def dtype_name(kind: pa.DataType, summary: ColumnSummary) -> str:
    """The dtype pandas gives the column when it reads the whole table: integers with gaps become float64."""
    if pa.types.is_integer(kind) and summary.missing:
        return "float64"
    return np.dtype(kind.to_pandas_dtype()).name


@dataclass
class ColumnSummary:
    name: str
    rows: int = 0
    missing: int = 0
    first_missing_row: int | None = None
    """1-based, among the data rows."""
    infinite: int = 0
    minimum: float | None = None
    maximum: float | None = None
    integer_valued: bool = True
    distinct: set[float] | None = field(default_factory=set)
    """None once there are more than MAX_LISTED_VALUES."""

    def add_arrow(self, column: pa.Array | pa.ChunkedArray) -> None:
        """The next rows of the column, of any numeric type, nulls missing."""
        self.add(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))

    def add(self, values: np.ndarray) -> None:
        """The next rows of the column, as float64 with NaN where a value is missing."""
        absent = np.isnan(values)
        if absent.any() and self.first_missing_row is None:
            self.first_missing_row = self.rows + int(np.argmax(absent)) + 1
        self.rows += values.size
        self.missing += int(absent.sum())
        self.infinite += int(np.isinf(values).sum())
        present = values[~absent]
        if not present.size:
            return
        low, high = float(present.min()), float(present.max())
        self.minimum = low if self.minimum is None else min(self.minimum, low)
        self.maximum = high if self.maximum is None else max(self.maximum, high)
        self.integer_valued = self.integer_valued and bool(np.array_equal(present, np.round(present)))
        if self.distinct is not None:
            self.distinct.update(np.unique(present).tolist())
            if len(self.distinct) > MAX_LISTED_VALUES:
                self.distinct = None

    def problems(self, is_label: bool) -> list[str]:
        """What fusion could not use: infinite values anywhere, missing values outside label columns."""
        found = []
        if self.infinite:
            found.append(f"column '{self.name}' has infinite values")
        if self.missing and not is_label:
            found.append(
                f"column '{self.name}' has {self.missing:,} missing value(s) (first in data row "
                f"{self.first_missing_row}); fill them, or list the column in label_columns if it is a label"
            )
        return found

    def record(self, dtype: str) -> dict[str, Any]:
        """The dataset row's entry for this column."""
        return {
            "name": self.name,
            "dtype": dtype,
            "missing": self.missing,
            "min": self.minimum,
            "max": self.maximum,
            "integer_valued": self.integer_valued,
            "values": sorted(self.distinct) if self.distinct is not None else None,
        }


def checked_records(
    summaries: Sequence[ColumnSummary], dtypes: Sequence[str], label_columns: set[str]
) -> list[dict[str, Any]]:
    """The columns' records, or a 422 listing every value problem of every column."""
    problems = [problem for summary in summaries for problem in summary.problems(summary.name in label_columns)]
    if problems:
        raise Unprocessable("The table has values fusion cannot use.", problems)
    return [summary.record(dtype) for summary, dtype in zip(summaries, dtypes, strict=True)]
