"""Chunked tables and the bounded shuffle: Parquet row groups as chunks, splits as views, every row
once an epoch in a seed-fixed order, and a batch-assembly buffer that stays within its bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from fusion.data.stream import Batch, ChunkSource, sequential_batches, shuffled_batches, table_source
from fusion.data.tables import Chunk, FrameTable, ParquetTable, read_all, split_table
from fusion.tasks import Task, TaskType

ROWS = 2_000
TASK = Task("label", TaskType.BINARY, "label")


def frame(rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"row": np.arange(rows, dtype=np.int64), "x": rng.normal(size=rows), "label": rng.integers(0, 2, rows)}
    )


@pytest.fixture
def parquet_table(tmp_path: Path) -> ParquetTable:
    """Three files, row groups of 150 rows (the last of each file shorter)."""
    data = frame()
    for i, part in enumerate(np.array_split(np.arange(ROWS), 3)):
        pq.write_table(pa.Table.from_pandas(data.iloc[part], preserve_index=False), tmp_path / f"part{i}.parquet",
                       row_group_size=150)  # fmt: skip
    return ParquetTable(tmp_path)


def rows_source(table: ParquetTable | FrameTable) -> ChunkSource:
    return table_source(table, ["row"], lambda f: {"row": torch.from_numpy(f["row"].to_numpy(copy=True))}, [TASK])


def epoch_rows(source: ChunkSource, seed: int, epoch: int, buffer_rows: int = 400) -> list[int]:
    return [int(r) for f, _ in shuffled_batches(source, 64, buffer_rows, seed, epoch) for r in f["row"]]


def test_parquet_chunks_are_row_groups_read_on_demand(parquet_table: ParquetTable) -> None:
    assert len(parquet_table.paths) == 3 and parquet_table.num_rows == ROWS
    assert len(parquet_table.chunks) == 15 and max(c.rows for c in parquet_table.chunks) == 150
    assert [c.start for c in parquet_table.chunks[1:]] == [c.stop for c in parquet_table.chunks[:-1]]
    assert read_all(parquet_table, ["row", "x"]).equals(frame()[["row", "x"]])
    as_frame = FrameTable(frame(), chunk_rows=300)
    assert read_all(as_frame, ["row"]).equals(frame()[["row"]]) and len(as_frame.chunks) == 7


def test_validation_split_is_two_complementary_views(parquet_table: ParquetTable) -> None:
    train, validation = split_table(parquet_table, 0.2, seed=3)
    train_rows = set(read_all(train, ["row"]).row)
    validation_rows = set(read_all(validation, ["row"]).row)
    assert train_rows.isdisjoint(validation_rows) and len(train_rows | validation_rows) == ROWS
    assert train.num_rows == len(train_rows) and 0.15 < validation.num_rows / ROWS < 0.25
    again = split_table(ParquetTable(parquet_table.paths), 0.2, seed=3)[1]
    assert set(read_all(again, ["row"]).row) == validation_rows, "the same seed draws the same split"
    other = split_table(parquet_table, 0.2, seed=4)[1]
    assert set(read_all(other, ["row"]).row) != validation_rows


def test_every_row_once_per_epoch_in_an_order_fixed_by_the_seed(parquet_table: ParquetTable) -> None:
    train, _ = split_table(parquet_table, 0.2, seed=0)
    source = rows_source(train)
    expected = sorted(read_all(train, ["row"]).row)
    first = epoch_rows(source, seed=1, epoch=1)
    assert sorted(first) == expected, "every training row exactly once"
    assert epoch_rows(source, seed=1, epoch=1) == first, "the same seed replays the same order"
    assert epoch_rows(source, seed=2, epoch=1) != first and epoch_rows(source, seed=1, epoch=2) != first
    assert first != expected, "shuffled"
    labels = [float(v) for _, labels_ in shuffled_batches(source, 64, 400, 1, 1) for v in labels_["label"]]
    by_row = dict(zip(frame().row, frame().label, strict=True))
    assert labels == [by_row[r] for r in first], "labels travel with their rows"


def test_the_assembly_buffer_never_exceeds_its_bound(parquet_table: ParquetTable) -> None:
    """Rows loaded but not yet handed out, measured at every load: at most buffer_rows + one chunk."""
    inner = rows_source(parquet_table)
    loaded, handed_out, buffered = [0], [0], []

    def load(chunk: Chunk) -> Batch:
        batch = inner.load(chunk)
        loaded[0] += chunk.rows
        buffered.append(loaded[0] - handed_out[0])
        return batch

    buffer_rows = 300
    for features, _ in shuffled_batches(ChunkSource(inner.chunks, load), 64, buffer_rows, seed=0, epoch=1):
        handed_out[0] += len(features["row"])
    largest_chunk = max(c.rows for c in parquet_table.chunks)
    assert handed_out[0] == ROWS and max(buffered) <= buffer_rows + largest_chunk


def test_sequential_batches_keep_the_table_order(parquet_table: ParquetTable) -> None:
    rows = [int(r) for f, _ in sequential_batches(rows_source(parquet_table), 64) for r in f["row"]]
    assert rows == list(range(ROWS))
