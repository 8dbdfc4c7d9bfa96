"""Tabular files as chunked tables, for the command line: nothing reads a whole file into memory."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from fusion.data.tables import ParquetTable, Table

CSV_BLOCK_BYTES = 16 * 2**20
"""CSV bytes parsed at once: each block becomes one row group of the Parquet copy. Column types are
inferred from the first block, so a large block sees more of the file before deciding."""
CSV_SUFFIXES = {".csv", ".txt"}


def open_table(path: Path, scratch: Path) -> Table:
    """A Parquet file, folder or glob read in place; a CSV file is first streamed, block by block, into a
    Parquet copy under `scratch` (CSV has no row groups to read one at a time)."""
    if path.suffix.lower() in CSV_SUFFIXES:
        scratch.mkdir(parents=True, exist_ok=True)
        return ParquetTable(csv_to_parquet(path, scratch / f"{len(list(scratch.glob('*')))}-{path.stem}.parquet"))
    if path.is_file() and path.suffix.lower() != ".parquet":
        raise ValueError(f"{path}: unsupported file type '{path.suffix}'; use .csv or .parquet")
    return ParquetTable(path)


def csv_to_parquet(path: Path, target: Path) -> Path:
    """`path`'s rows in a Parquet file at `target`, one row group per CSV block: memory is one block."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES))
        with pq.ParquetWriter(target, reader.schema) as writer:
            for batch in reader:
                writer.write_table(pa.Table.from_batches([batch]))
    except pa.ArrowInvalid as error:
        raise ValueError(
            f"{path}: cannot read it as CSV in blocks ({error}); a column whose type changes down the file "
            "(ids, then text) needs fixing, or convert the file to Parquet"
        ) from error
    return target
