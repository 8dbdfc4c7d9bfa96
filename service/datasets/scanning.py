"""Reading Parquet files in place, row group by row group: their schema checked first, from the footers
alone, then their values summarized a batch at a time, so that memory does not depend on the row count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from service.core.errors import Unprocessable
from service.datasets.parsing import check_header, few
from service.datasets.statistics import ColumnSummary, checked_records

BATCH_ROWS = 65_536


@dataclass(frozen=True)
class ScannedTable:
    rows: int
    columns: list[dict[str, Any]]


def scan_parquet(paths: Sequence[Path], label_columns: set[str], max_columns: int, root: Path) -> ScannedTable:
    """The files' rows and column statistics; a 422 for a schema or values fusion cannot use.
    `root` only shortens the file names in messages."""
    schema = _common_schema(paths, root)
    check_header(schema.names, max_columns)
    unknown = sorted(label_columns - set(schema.names))
    if unknown:
        raise Unprocessable(f"label_columns names column(s) {few(unknown)} that the table does not have.")
    text = [item.name for item in schema if not (pa.types.is_integer(item.type) or pa.types.is_floating(item.type))]
    if text:
        raise Unprocessable(
            f"Column(s) {few(text)} are not numeric (strings, booleans, nested or other types). Encode categories "
            "as integer ids (0, 1, 2, ...) and booleans as 0/1, and write the Parquet files again."
        )
    summaries = [ColumnSummary(item.name, np.dtype(item.type.to_pandas_dtype()).name) for item in schema]
    for path in paths:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=schema.names):
            for summary, column in zip(summaries, batch.columns, strict=True):
                summary.add(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False))
    rows = summaries[0].rows if summaries else 0
    if rows == 0:
        raise Unprocessable("The Parquet files have columns but no rows.")
    return ScannedTable(rows=rows, columns=checked_records(summaries, label_columns))


def _common_schema(paths: Sequence[Path], root: Path) -> pa.Schema:
    """The one schema every file has (names and types, in order)."""
    schemas = []
    for path in paths:
        try:
            schemas.append(pq.read_schema(path))
        except (pa.ArrowException, OSError) as error:
            raise Unprocessable(f"'{path.relative_to(root)}' is not a readable Parquet file: {error}") from None
    first = schemas[0]
    for path, schema in zip(paths[1:], schemas[1:], strict=True):
        if not schema.remove_metadata().equals(first.remove_metadata()):
            raise Unprocessable(
                f"'{path.relative_to(root)}' has other columns or types than '{paths[0].relative_to(root)}' "
                f"({', '.join(schema.names)} vs {', '.join(first.names)}). "
                "Every file of a dataset needs the same schema."
            )
    return first
