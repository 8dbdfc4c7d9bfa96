"""Parquet judged from its footer alone, before any value is read.

The schema comes first: nested columns (lists, structs, maps) and text or bytes are refused by name, since
their size is not bounded by the row count (one row of a list can hold 10^8 values, one string 500 MB). Then
every column chunk's decoded size, the larger of what its pages unpack to and what its rows take in memory,
must fit the chunk and row group limits; what does is read a batch at a time.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from service.core.errors import Unprocessable
from service.datasets.columns import few
from service.datasets.limits import TableLimits

WRITE_SMALLER = "Write the file with smaller row groups (pyarrow: row_group_size=100_000)."


def check_types(schema: pa.Schema) -> None:
    """Every column numeric (integer or floating point); a 422 naming the others and what to do."""
    nested = [item.name for item in schema if pa.types.is_nested(item.type)]
    if nested:
        raise Unprocessable(
            f"Column(s) {few(nested)} are not numeric: they hold nested values (lists, structs or maps). Write "
            "one numeric column per value, or leave the column out, and write the Parquet file again."
        )
    text = [item.name for item in schema if _is_text(item.type)]
    if text:
        raise Unprocessable(
            f"Column(s) {few(text)} are not numeric: they hold text or bytes. Encode categories as integer ids "
            "(0, 1, 2, ...), and write the Parquet file again."
        )
    other = [item for item in schema if not (pa.types.is_integer(item.type) or pa.types.is_floating(item.type))]
    if other:
        types = ", ".join(sorted({str(item.type) for item in other}))
        raise Unprocessable(
            f"Column(s) {few([item.name for item in other])} are not numeric ({types}). Encode booleans as 0/1 "
            "and categories as integer ids (0, 1, 2, ...), and write the Parquet file again."
        )


def check_sizes(metadata: pq.FileMetaData, schema: pa.Schema, limits: TableLimits, shown: str) -> None:
    """Each row group's columns, decoded, within the limits. `schema` has passed check_types, so its
    fields are the file's leaf columns, in order."""
    widths = [item.type.bit_width // 8 for item in schema]
    for group_index in range(metadata.num_row_groups):
        group = metadata.row_group(group_index)
        sizes = [
            max(group.column(i).total_uncompressed_size, group.num_rows * widths[i]) for i in range(group.num_columns)
        ]
        largest = max(range(len(sizes)), key=sizes.__getitem__, default=None)
        if largest is not None and sizes[largest] > limits.max_chunk_bytes:
            raise Unprocessable(
                f"'{shown}': column '{schema.field(largest).name}' of row group {group_index} decodes to "
                f"{sizes[largest]:,} bytes; at most {limits.max_chunk_bytes:,} are accepted per column and "
                f"row group. {WRITE_SMALLER}"
            )
        if sum(sizes) > limits.max_row_group_bytes:
            raise Unprocessable(
                f"'{shown}': row group {group_index} decodes to {sum(sizes):,} bytes; at most "
                f"{limits.max_row_group_bytes:,} are accepted per row group. {WRITE_SMALLER}"
            )


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_binary_view(kind)
    )
