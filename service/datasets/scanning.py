"""Reading Parquet files, row group by row group, on any pyarrow file system (local disk, or a cloud store).

The footers come first, and everything they can show is checked before a value is read (parquet_checks):
one schema for all files, numeric columns only, row count and decoded sizes within the limits. Then the
values are summarized a batch at a time, and optionally handed on (an upload is written out as it is
read), so that memory depends on neither the row count nor the file sizes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from service.core.errors import Unprocessable
from service.datasets.columns import check_labels_known, check_names
from service.datasets.limits import TableLimits, cap_arrow_threads, too_many_rows
from service.datasets.parquet_checks import check_sizes, check_types
from service.datasets.statistics import ColumnSummary, batch_rows, checked_records, dtype_name

MAX_FOOTER_BYTES = 64 * 2**20
"""A footer holds the schema and one entry per column chunk: megabytes at most for real files."""

Sink = Callable[[pa.RecordBatch], None]


@dataclass(frozen=True)
class ParquetInput:
    """One Parquet file: where it is, and how messages name it."""

    filesystem: pafs.FileSystem
    path: str
    shown: str

    @contextmanager
    def open(self) -> Iterator[pq.ParquetFile]:
        with self.filesystem.open_input_file(self.path) as handle:
            size = handle.size()
            if size >= 12:
                footer = struct.unpack("<i", handle.read_at(4, size - 8))[0]
                if footer > MAX_FOOTER_BYTES:
                    raise Unprocessable(
                        f"The Parquet file '{self.shown}' has a footer of {footer:,} bytes; at most "
                        f"{MAX_FOOTER_BYTES:,} are accepted. Write fewer row groups or columns per file."
                    )
            yield pq.ParquetFile(handle)


@dataclass(frozen=True)
class ScannedTable:
    rows: int
    columns: list[dict[str, Any]]


def scan_parquet(
    inputs: Sequence[ParquetInput], label_columns: set[str], limits: TableLimits, sink: Sink | None = None
) -> ScannedTable:
    """The files' rows and column statistics; a 422 for a schema or values fusion cannot use."""
    cap_arrow_threads()
    schema = _checked_footers(inputs, label_columns, limits)
    summaries = [ColumnSummary(name) for name in schema.names]
    for item in inputs:
        with _readable(item), item.open() as file:
            for batch in _batches(file, schema.names):
                for summary, column in zip(summaries, batch.columns, strict=True):
                    summary.add_arrow(column)
                if sink is not None:
                    sink(batch)
    rows = summaries[0].rows if summaries else 0
    if rows == 0:
        raise Unprocessable("The table has columns but no rows.")
    dtypes = [dtype_name(item.type, summary) for item, summary in zip(schema, summaries, strict=True)]
    return ScannedTable(rows=rows, columns=checked_records(summaries, dtypes, label_columns))


def _batches(file: pq.ParquetFile, names: list[str]) -> Iterator[pa.RecordBatch]:
    """The file's rows a batch at a time, one row group after another: a reader over the whole file keeps
    buffers of the row groups it has passed (its memory grew with the file's length, 64 -> 192 MB over
    4M rows), one per row group starts afresh each time."""
    for group in range(file.num_row_groups):
        yield from file.iter_batches(batch_size=batch_rows(len(names)), row_groups=[group], columns=names)


def _checked_footers(inputs: Sequence[ParquetInput], label_columns: set[str], limits: TableLimits) -> pa.Schema:
    """The one schema every file has, once every footer passed the checks."""
    first: pa.Schema | None = None
    rows = 0
    for item in inputs:
        with _readable(item), item.open() as file:
            metadata, schema = file.metadata, file.schema_arrow.remove_metadata()
        if first is None:
            check_names(schema.names, limits.max_columns)
            check_labels_known(schema.names, label_columns)
            check_types(schema)
            first = schema
        elif not schema.equals(first):
            raise Unprocessable(
                f"'{item.shown}' has other columns or types than '{inputs[0].shown}' "
                f"({', '.join(schema.names)} vs {', '.join(first.names)}). Every file of a dataset needs the same "
                "schema."
            )
        check_sizes(metadata, first, limits, item.shown)
        rows += metadata.num_rows
        if rows > limits.max_rows:
            raise too_many_rows(limits.max_rows)
    assert first is not None, "a dataset names at least one file"
    return first


@contextmanager
def _readable(item: ParquetInput) -> Iterator[None]:
    """Arrow's and the file system's errors as a 422 naming the file."""
    try:
        yield
    except (pa.ArrowException, OSError) as error:
        raise Unprocessable(f"The Parquet file '{item.shown}' could not be read: {error}") from None
