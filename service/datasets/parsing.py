"""Reading an uploaded table, CSV or Parquet, and refusing what fusion could not use.

Every problem is a 422 naming the columns (at most a few) and what to change. Label columns may have
missing values (a row can lack some task's label); every other column must be complete.
"""

from __future__ import annotations

import csv
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from service.core.errors import Unprocessable
from service.datasets.statistics import ColumnSummary, checked_records

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class TableLimits:
    max_columns: int
    max_cells: int
    """Rows times columns: a file within the byte limit can still unpack to many gigabytes (Parquet compresses
    well; a CSV of one-digit values takes two bytes a value and eight in memory)."""


def read_table(path: Path, filename: str, limits: TableLimits) -> tuple[pd.DataFrame, str]:
    """The table and its format ('csv' or 'parquet')."""
    if path.stat().st_size == 0:
        raise Unprocessable("The file is empty. Upload a CSV file with a header row, or a Parquet file.")
    with path.open("rb") as handle:
        is_parquet = handle.read(4) == PARQUET_MAGIC
    if is_parquet:
        return _read_parquet(path, limits), "parquet"
    if filename.lower().endswith((".parquet", ".pq")):
        raise Unprocessable(f"'{filename}' is named like a Parquet file but is not one (no PAR1 header).")
    return _read_csv(path, limits), "csv"


def _read_parquet(path: Path, limits: TableLimits) -> pd.DataFrame:
    try:
        metadata = pq.read_metadata(path)
        check_header(metadata.schema.to_arrow_schema().names, limits.max_columns)
        cells = metadata.num_rows * metadata.num_columns
        if cells > limits.max_cells:
            raise _too_many_values(
                f"{metadata.num_rows:,} rows of {metadata.num_columns:,} columns ({cells:,} values)", limits.max_cells
            )
        return pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as error:
        raise Unprocessable(f"The Parquet file could not be read: {error}") from None


def _read_csv(path: Path, limits: TableLimits) -> pd.DataFrame:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise Unprocessable("The CSV file has no header row. Put the column names on the first line.")
        check_header(header, limits.max_columns)
        most_rows = limits.max_cells // len(header)
        with warnings.catch_warnings():
            # Without index_col=False pandas would quietly turn an extra field into a row index.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            # One row past the limit is enough to refuse the file, without reading all of it.
            frame = pd.read_csv(path, encoding="utf-8-sig", low_memory=False, index_col=False, nrows=most_rows + 1)
        if len(frame) > most_rows:
            raise _too_many_values(f"more than {most_rows:,} rows of {len(header):,} columns", limits.max_cells)
        return frame
    except pd.errors.ParserWarning:
        assert header  # only read_csv warns, and it runs once the header was read and found non-empty
        raise Unprocessable(
            f"Some rows have more fields than the header's {len(header)} columns. "
            "Give every row exactly one value per column (quote values that contain commas)."
        ) from None
    except UnicodeDecodeError as error:
        raise Unprocessable(
            f"The file is not UTF-8 text (byte 0x{error.object[error.start]:02x} at position {error.start}). "
            "Save the CSV as UTF-8, or upload Parquet."
        ) from None
    except (pd.errors.ParserError, csv.Error) as error:
        raise Unprocessable(f"The CSV file could not be parsed: {' '.join(str(error).split())}") from None


def _too_many_values(size: str, max_cells: int) -> Unprocessable:
    return Unprocessable(
        f"The table has {size}; at most {max_cells:,} values are accepted. Upload fewer rows or columns."
    )


def check_header(names: list[str], max_columns: int) -> None:
    if len(names) > max_columns:
        raise Unprocessable(f"The table has {len(names):,} columns; at most {max_columns:,} are accepted.")
    blank = [i + 1 for i, name in enumerate(names) if not str(name).strip()]
    if blank:
        raise Unprocessable(f"Column(s) {few(blank)} have no name. Give every column a name in the header.")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise Unprocessable(f"Column name(s) {few(repeated)} appear more than once. Make column names unique.")


def check_table(frame: pd.DataFrame, label_columns: set[str]) -> list[dict[str, Any]]:
    """Rows present, every column numeric and finite, missing values only in label columns; returns the
    column statistics job validation reads, gathered on the same pass."""
    if len(frame) == 0:
        raise Unprocessable("The table has a header but no rows.")
    unknown = sorted(label_columns - set(frame.columns))
    if unknown:
        raise Unprocessable(f"label_columns names column(s) {few(unknown)} that the table does not have.")
    text = [name for name in frame.columns if pd.api.types.is_bool_dtype(frame[name])]
    text += [name for name in frame.columns if not pd.api.types.is_numeric_dtype(frame[name])]
    if text:
        raise Unprocessable(
            f"Column(s) {few(text)} are not numeric. Encode categories as integer ids (0, 1, 2, ...) and "
            "booleans as 0/1 before uploading."
        )
    summaries = []
    for name in frame.columns:  # the whole frame as one batch
        summary = ColumnSummary(str(name), str(frame[name].dtype))
        summary.add(frame[name].to_numpy(dtype=np.float64, na_value=np.nan))
        summaries.append(summary)
    return checked_records(summaries, label_columns)


def few(items: list[Any], limit: int = 5) -> str:
    shown = ", ".join(f"'{item}'" if isinstance(item, str) else str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
