"""Tables read chunk by chunk, so that no stage needs a whole data set in memory.

A `Table` knows its columns and row count, and lists its chunks; `read` loads one chunk's columns as a
frame. `FrameTable` cuts an in-memory frame (tests, small jobs); `ParquetTable` maps one chunk to each
row group of a list of Parquet files, reading only file footers up front. `split_table` carves a
validation fraction out of a table as two views of it, without reading any rows.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from fusion.data.objects import is_url, object_version, open_url, url_filesystem

FRAME_CHUNK_ROWS = 65_536
"""Rows per chunk of an in-memory frame: the same order as a Parquet row group."""


@dataclass(frozen=True)
class Chunk:
    """Rows start .. start + rows of a table, in the table's row order; `index` names it for seeding."""

    index: int
    start: int
    rows: int

    @property
    def stop(self) -> int:
        return self.start + self.rows


class Table(Protocol):
    @property
    def columns(self) -> list[str]: ...

    @property
    def num_rows(self) -> int: ...

    @property
    def chunks(self) -> list[Chunk]: ...

    def read(self, chunk: Chunk, columns: Sequence[str]) -> pd.DataFrame:
        """The chunk's rows of `columns`, indexed 0 .. chunk.rows - 1."""
        ...

    def fingerprint(self, columns: Sequence[str]) -> str:
        """Changes when the rows of `columns` may have changed: the key of anything computed from them."""
        ...


def _cut(num_rows: int, chunk_rows: int) -> list[Chunk]:
    return [
        Chunk(i, start, min(chunk_rows, num_rows - start)) for i, start in enumerate(range(0, num_rows, chunk_rows))
    ]


class FrameTable:
    """A DataFrame seen as fixed-size chunks."""

    def __init__(self, frame: pd.DataFrame, chunk_rows: int = FRAME_CHUNK_ROWS) -> None:
        self.frame = frame.reset_index(drop=True)
        self.chunk_rows = chunk_rows

    @property
    def columns(self) -> list[str]:
        return list(self.frame.columns)

    @property
    def num_rows(self) -> int:
        return len(self.frame)

    @cached_property
    def chunks(self) -> list[Chunk]:
        return _cut(len(self.frame), self.chunk_rows)

    def read(self, chunk: Chunk, columns: Sequence[str]) -> pd.DataFrame:
        return self.frame.iloc[chunk.start : chunk.stop][list(columns)].reset_index(drop=True)

    def fingerprint(self, columns: Sequence[str]) -> str:
        hashed = pd.util.hash_pandas_object(self.frame[list(columns)], index=False).to_numpy()
        return hashlib.sha256(f"{list(columns)}".encode() + hashed.tobytes()).hexdigest()


class ParquetTable:
    """Parquet files read one row group at a time; `paths` may be files, folders or glob patterns, or the URLs
    of objects in a cloud store (s3://, gs://; fusion.data.objects)."""

    def __init__(self, paths: str | Path | Sequence[str | Path]) -> None:
        self.paths = _expand([paths] if isinstance(paths, str | Path) else list(paths))
        if not self.paths:
            raise ValueError(f"no Parquet files found at {paths}")

    @cached_property
    def _row_groups(self) -> list[tuple[Path | str, int, int]]:
        """(file, row group, rows) for every row group, from the footers only."""
        groups = []
        for path in self.paths:
            metadata = _open(path).metadata
            groups += [(path, g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)]
        return [group for group in groups if group[2] > 0]

    @cached_property
    def columns(self) -> list[str]:
        return list(_open(self.paths[0]).schema_arrow.names)

    @property
    def num_rows(self) -> int:
        return sum(rows for _, _, rows in self._row_groups)

    @cached_property
    def chunks(self) -> list[Chunk]:
        starts = np.cumsum([0] + [rows for _, _, rows in self._row_groups])
        return [Chunk(i, int(starts[i]), rows) for i, (_, _, rows) in enumerate(self._row_groups)]

    def read(self, chunk: Chunk, columns: Sequence[str]) -> pd.DataFrame:
        path, group, _ = self._row_groups[chunk.index]
        return _open(path).read_row_group(group, columns=list(columns)).to_pandas()

    def fingerprint(self, columns: Sequence[str]) -> str:
        stats = [_identity(path) for path in self.paths]
        return hashlib.sha256(f"{stats}{list(columns)}".encode()).hexdigest()


def _open(path: Path | str) -> pq.ParquetFile:
    return pq.ParquetFile(open_url(path) if isinstance(path, str) else path)


def _identity(path: Path | str) -> tuple[str, int, int | str]:
    """What changes when the file does: its place, size, and mtime (or a cloud object's version)."""
    if isinstance(path, str):
        fs, inside = url_filesystem(path)
        info = fs.info(inside)
        return path, int(info["size"]), object_version(info)
    return str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns


def _expand(paths: list[str | Path]) -> list[Path | str]:
    """Local entries as the files they name; URLs as they are."""
    found: list[Path | str] = []
    for entry in paths:
        if is_url(entry):
            found.append(str(entry))
            continue
        path = Path(entry)
        if path.is_dir():
            found += sorted(path.glob("*.parquet"))
        elif path.exists():
            found.append(path)
        else:
            found += sorted(Path(match) for match in glob.glob(str(entry)))
    return found


class MaskedTable:
    """The rows of `base` kept by a per-chunk mask: one side of a train/validation split.

    Each chunk's mask is drawn from (seed, chunk index), so it is known without reading the chunk and
    is the same in every process; the two sides of a split are complementary views of one table.
    """

    def __init__(self, base: Table, fraction: float, seed: int, validation: bool) -> None:
        self.base = base
        self.fraction = fraction
        self.seed = seed
        self.validation = validation

    def mask(self, chunk: Chunk) -> np.ndarray:
        drawn = np.random.default_rng([self.seed, chunk.index]).random(chunk.rows) < self.fraction
        return drawn if self.validation else ~drawn

    @property
    def columns(self) -> list[str]:
        return self.base.columns

    @cached_property
    def _kept(self) -> list[tuple[Chunk, Chunk]]:
        """(base chunk, view chunk) pairs; a view chunk keeps its base chunk's index."""
        pairs, start = [], 0
        for chunk in self.base.chunks:
            rows = int(self.mask(chunk).sum())
            if rows:
                pairs.append((chunk, Chunk(chunk.index, start, rows)))
                start += rows
        return pairs

    @property
    def num_rows(self) -> int:
        return sum(view.rows for _, view in self._kept)

    @property
    def chunks(self) -> list[Chunk]:
        return [view for _, view in self._kept]

    @cached_property
    def _base_of(self) -> dict[int, Chunk]:
        return {view.index: base for base, view in self._kept}

    def read(self, chunk: Chunk, columns: Sequence[str]) -> pd.DataFrame:
        base = self._base_of[chunk.index]
        frame = self.base.read(base, columns)
        return frame[self.mask(base)].reset_index(drop=True)

    def fingerprint(self, columns: Sequence[str]) -> str:
        side = "validation" if self.validation else "train"
        return hashlib.sha256(
            f"{self.base.fingerprint(columns)}|{self.fraction}|{self.seed}|{side}".encode()
        ).hexdigest()


def split_table(table: Table, fraction: float, seed: int = 0) -> tuple[MaskedTable, MaskedTable]:
    """(train, validation): each row goes to validation with probability `fraction`, fixed by `seed`."""
    return MaskedTable(table, fraction, seed, validation=False), MaskedTable(table, fraction, seed, validation=True)


def as_table(data: Table | pd.DataFrame) -> Table:
    """Frames become FrameTables; tables pass through."""
    return FrameTable(data) if isinstance(data, pd.DataFrame) else data


def read_all(table: Table, columns: Sequence[str]) -> pd.DataFrame:
    """Every row of `columns`: only for columns small enough to hold (labels, a sample's features)."""
    parts = [table.read(chunk, columns) for chunk in table.chunks]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))


def largest_values(tables: Iterable[Table], columns: Sequence[str]) -> dict[str, int]:
    """Each integer column's largest value over the tables (0 for none), in one pass over their chunks."""
    largest = dict.fromkeys(columns, 0)
    for table in tables if columns else ():
        for chunk in table.chunks:
            maxima = table.read(chunk, list(columns)).max()
            largest = {column: max(largest[column], int(maxima[column])) for column in columns}
    return largest


def read_head(table: Table, columns: Sequence[str], rows: int) -> pd.DataFrame:
    """The first `rows` rows of `columns`, reading only the chunks that hold them."""
    parts, taken = [], 0
    for chunk in table.chunks:
        if taken >= rows:
            break
        parts.append(table.read(chunk, columns).iloc[: rows - taken])
        taken += len(parts[-1])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))
