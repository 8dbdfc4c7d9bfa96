"""Mini-batches streamed from chunked data: a reproducible shuffle in bounded memory, or in order.

A `ChunkSource` lists chunks and loads one as (features, labels) tensor tables. Training reads an
epoch through a buffer: chunks come in an order drawn from (seed, epoch); once the buffer holds
`buffer_rows` rows, they are permuted and cut into batches, and the rows short of a full batch carry
over. So memory is one buffer plus one chunk, whatever the number of rows, every row is seen once an
epoch, and the same (seed, epoch) replays the same batches (which is how a resumed job skips batches).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from fusion.data.tables import FRAME_CHUNK_ROWS, Chunk, Table
from fusion.data.tensor_tables import TensorTable, label_tensors, num_rows, take
from fusion.tasks import Task

Batch = tuple[TensorTable, TensorTable]
"""(features, labels)."""


@dataclass(frozen=True)
class ChunkSource:
    """Rows as chunks that each load into a (features, labels) batch."""

    chunks: Sequence[Chunk]
    load: Callable[[Chunk], Batch]

    @property
    def rows(self) -> int:
        return sum(chunk.rows for chunk in self.chunks)


def tensor_source(features: TensorTable, labels: TensorTable, chunk_rows: int = FRAME_CHUNK_ROWS) -> ChunkSource:
    """In-memory tensor tables as chunks (views, no copies)."""
    total = num_rows(features)
    chunks = [Chunk(i, start, min(chunk_rows, total - start)) for i, start in enumerate(range(0, total, chunk_rows))]

    def load(chunk: Chunk) -> Batch:
        rows = slice(chunk.start, chunk.stop)
        return take(features, rows), take(labels, rows)

    return ChunkSource(chunks, load)


def table_source(
    table: Table, columns: Sequence[str], features: Callable[[pd.DataFrame], TensorTable], tasks: list[Task]
) -> ChunkSource:
    """Feature columns of a table turned into tensors by `features`, chunk by chunk, with the tasks' labels."""
    wanted = list(dict.fromkeys([*columns, *(task.label for task in tasks)]))

    def load(chunk: Chunk) -> Batch:
        frame = table.read(chunk, wanted)
        return features(frame), label_tensors(frame, tasks)

    return ChunkSource(table.chunks, load)


def shuffled_batches(source: ChunkSource, batch_size: int, buffer_rows: int, seed: int, epoch: int) -> Iterator[Batch]:
    """One epoch of batches in an order fixed by (seed, epoch). Each chunk is copied into one buffer of
    `buffer_rows` rows as it loads, and dropped; a full buffer is read out in a permuted order, a batch at
    a time, and the rows short of a full batch move to its front. So what is held is the buffer and the
    chunk being copied in (with 4 KB rows, a buffer is half a gigabyte: holding the chunks and a permuted
    copy beside it, as a concatenation would, doubles that). Batches are gathered copies, so that the
    last one a caller still holds keeps nothing else alive."""
    rng = np.random.default_rng([seed, epoch])
    buffer_rows = min(max(buffer_rows, batch_size), max(source.rows, 1))  # no larger than the data
    buffer: Batch | None = None
    filled = 0
    for index in rng.permutation(len(source.chunks)):
        chunk = source.load(source.chunks[index])
        rows, start = num_rows(chunk[0]), 0
        if buffer is None:
            buffer = _empty_like(chunk, buffer_rows)
        while start < rows:
            taken = min(rows - start, buffer_rows - filled)
            _copy_into(buffer, filled, _rows(chunk, slice(start, start + taken)))
            filled, start = filled + taken, start + taken
            if filled == buffer_rows:
                filled = yield from _read_out(buffer, filled, batch_size, rng, keep_partial=True)
        del chunk
    if buffer is not None and filled:
        yield from _read_out(buffer, filled, batch_size, rng, keep_partial=False)


def sequential_batches(source: ChunkSource, batch_size: int) -> Iterator[Batch]:
    """Every row once, in the table's order (for scoring)."""
    for chunk in source.chunks:
        batch = source.load(chunk)
        yield from _cut(batch, num_rows(batch[0]), batch_size)


def _empty_like(batch: Batch, rows: int) -> Batch:
    """Uninitialised tables of `rows` rows with the tensors, dtypes and row shapes of `batch`."""
    features, labels = batch
    return (
        {name: torch.empty((rows, *t.shape[1:]), dtype=t.dtype) for name, t in features.items()},
        {name: torch.empty((rows, *t.shape[1:]), dtype=t.dtype) for name, t in labels.items()},
    )


def _copy_into(buffer: Batch, at: int, part: Batch) -> None:
    for table, values in zip(buffer, part, strict=True):
        for name, tensor in values.items():
            table[name][at : at + len(tensor)].copy_(tensor)


def _read_out(
    buffer: Batch, filled: int, batch_size: int, rng: np.random.Generator, *, keep_partial: bool
) -> Generator[Batch, None, int]:
    """Batches of the buffer's first `filled` rows in a permuted order. With `keep_partial`, the rows
    short of a full batch are moved to the buffer's front (their count is returned) for the next fill."""
    order = torch.from_numpy(rng.permutation(filled))
    full = filled - filled % batch_size if keep_partial else filled
    for start in range(0, full, batch_size):
        yield _gathered(buffer, order[start : start + batch_size])
    left = order[full:]
    if len(left):
        _copy_into(buffer, 0, _gathered(buffer, left))
    return len(left)


def _gathered(batch: Batch, rows: torch.Tensor) -> Batch:
    """The rows, as tensors of their own."""
    features, labels = batch
    return (
        {name: t.index_select(0, rows) for name, t in features.items()},
        {name: t.index_select(0, rows) for name, t in labels.items()},
    )


def _rows(batch: Batch, rows: torch.Tensor | slice) -> Batch:
    return take(batch[0], rows), take(batch[1], rows)


def _cut(batch: Batch, rows: int, batch_size: int) -> Iterator[Batch]:
    for start in range(0, rows, batch_size):
        yield _rows(batch, slice(start, min(start + batch_size, rows)))
