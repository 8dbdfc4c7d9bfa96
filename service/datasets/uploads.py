"""An uploaded table, CSV or Parquet, checked and written to Parquet on disk as it streams.

Neither format is ever held whole: a Parquet upload is read batch by batch once its footer passed the
checks (scanning), a CSV block by block (csv_reading); the statistics are gathered on the way, and what is
written is the Parquet file that jobs read. Every problem is a 422 naming the columns (at most a few) and
what to change. Label columns may have missing values (a row can lack some task's label); every other
column must be complete.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from service.core.errors import Unprocessable
from service.datasets.columns import check_labels_known, check_names
from service.datasets.csv_reading import column_kind, numbers, read_header, text_batches, typed
from service.datasets.limits import TableLimits, cap_arrow_threads, too_many_rows
from service.datasets.scanning import ParquetInput, scan_parquet
from service.datasets.statistics import ColumnSummary, checked_records, dtype_name

PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class WrittenTable:
    source_format: str
    """'csv' or 'parquet': what was uploaded."""
    rows: int
    columns: list[dict[str, Any]]


class ParquetSink:
    """Record batches written as they come, each its own row group; the file opens on the first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pq.ParquetWriter | None = None

    def __call__(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, batch.schema)
        self.writer.write_batch(batch)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def write_upload(path: Path, filename: str, label_columns: set[str], limits: TableLimits, out: Path) -> WrittenTable:
    """Checks the uploaded file at `path` and writes it to `out` as Parquet."""
    if path.stat().st_size == 0:
        raise Unprocessable("The file is empty. Upload a CSV file with a header row, or a Parquet file.")
    with path.open("rb") as handle:
        is_parquet = handle.read(4) == PARQUET_MAGIC
    if is_parquet:
        with closing(ParquetSink(out)) as sink:
            upload = ParquetInput(pafs.LocalFileSystem(), str(path), filename)
            scanned = scan_parquet([upload], label_columns, limits, sink)
        return WrittenTable("parquet", scanned.rows, scanned.columns)
    if filename.lower().endswith((".parquet", ".pq")):
        raise Unprocessable(f"'{filename}' is named like a Parquet file but is not one (no PAR1 header).")
    return _write_csv(path, label_columns, limits, out)


def _write_csv(path: Path, label_columns: set[str], limits: TableLimits, out: Path) -> WrittenTable:
    cap_arrow_threads()
    names = read_header(path)
    check_names(names, limits.max_columns)
    check_labels_known(names, label_columns)
    summaries = [ColumnSummary(name) for name in names]
    whole = [True] * len(names)
    for batch in text_batches(path, names):
        for i, (summary, column) in enumerate(zip(summaries, batch.columns, strict=True)):
            values, whole[i] = numbers(column, summary.name, whole[i])
            summary.add(values)
        if summaries[0].rows > limits.max_rows:
            raise too_many_rows(limits.max_rows)  # before reading the rest
    if summaries[0].rows == 0:
        raise Unprocessable("The table has a header but no rows.")
    kinds = [column_kind(summary, is_whole) for summary, is_whole in zip(summaries, whole, strict=True)]
    records = checked_records(
        summaries, [dtype_name(*pair) for pair in zip(kinds, summaries, strict=True)], label_columns
    )
    schema = pa.schema(list(zip(names, kinds, strict=True)))
    with closing(ParquetSink(out)) as sink:
        for batch in text_batches(path, names):
            columns = [typed(column, kind) for column, kind in zip(batch.columns, kinds, strict=True)]
            sink(pa.RecordBatch.from_arrays(columns, schema=schema))
    return WrittenTable("csv", summaries[0].rows, records)
