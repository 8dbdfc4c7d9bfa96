"""What one dataset may be: limits that hold while it streams, so that none depends on holding the table.

Columns and name lengths bound the per-column statistics; rows bound the time a scan takes; the bytes a
Parquet column chunk or row group decodes to bound the memory of reading one, and are known from the
footer before a byte of data is read. (The upload's own size is bounded while it arrives: FUSEBOX_MAX_DATASET_BYTES.)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from fusion.cpus import usable_cpus
from service.core.config import Settings
from service.core.errors import Unprocessable

MAX_COLUMN_NAME_CHARACTERS = 255


@dataclass(frozen=True)
class TableLimits:
    max_columns: int
    max_rows: int
    max_chunk_bytes: int
    """Decoded bytes of one column of one row group."""
    max_row_group_bytes: int
    """Decoded bytes of one row group, all columns together."""

    @classmethod
    def from_settings(cls, settings: Settings) -> TableLimits:
        return cls(
            max_columns=settings.max_dataset_columns,
            max_rows=settings.max_dataset_rows,
            max_chunk_bytes=settings.max_dataset_chunk_bytes,
            max_row_group_bytes=settings.max_dataset_row_group_bytes,
        )


def too_many_rows(max_rows: int) -> Unprocessable:
    return Unprocessable(
        f"The table has more than {max_rows:,} rows, the most accepted (FUSEBOX_MAX_DATASET_ROWS). Split it into "
        "several datasets, or ask for a higher limit."
    )


def cap_arrow_threads() -> None:
    """Arrow parses CSV blocks and decodes Parquet columns on a pool of one thread per host core: no more
    threads than the CPUs this process may use (fusion/cpus.py), which may be far fewer."""
    cpus = usable_cpus()
    if pa.cpu_count() > cpus:
        pa.set_cpu_count(cpus)
