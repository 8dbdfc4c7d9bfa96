"""Mini-batches streamed from chunked data: a reproducible shuffle in bounded memory, or in order.

A `ChunkSource` lists chunks and loads one as (features, labels) tensor tables. Training reads an
epoch through a buffer: chunks come in an order drawn from (seed, epoch); once the buffer holds
`buffer_rows` rows, they are permuted and cut into batches, and the rows short of a full batch carry
over. So memory is one buffer plus one chunk, whatever the number of rows, every row is seen once an
epoch, and the same (seed, epoch) replays the same batches (which is how a resumed job skips batches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    """One epoch of batches in an order fixed by (seed, epoch); at most buffer_rows + one chunk held."""
    rng = np.random.default_rng([seed, epoch])
    buffer_rows = max(buffer_rows, batch_size)
    pending: list[Batch] = []
    pending_rows = 0
    for index in rng.permutation(len(source.chunks)):
        batch = source.load(source.chunks[index])
        pending.append(batch)
        pending_rows += num_rows(batch[0])
        if pending_rows < buffer_rows:
            continue
        shuffled = _permuted(_concat(pending), rng)
        full = pending_rows - pending_rows % batch_size
        yield from _cut(shuffled, full, batch_size)
        pending = [_rows(shuffled, slice(full, pending_rows))] if full < pending_rows else []
        pending_rows -= full
    if pending:
        yield from _cut(_permuted(_concat(pending), rng), pending_rows, batch_size)


def sequential_batches(source: ChunkSource, batch_size: int) -> Iterator[Batch]:
    """Every row once, in the table's order (for scoring)."""
    for chunk in source.chunks:
        batch = source.load(chunk)
        yield from _cut(batch, num_rows(batch[0]), batch_size)


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    features = {name: torch.cat([part[0][name] for part in parts]) for name in parts[0][0]}
    labels = {name: torch.cat([part[1][name] for part in parts]) for name in parts[0][1]}
    return features, labels


def _rows(batch: Batch, rows: torch.Tensor | slice) -> Batch:
    return take(batch[0], rows), take(batch[1], rows)


def _permuted(batch: Batch, rng: np.random.Generator) -> Batch:
    return _rows(batch, torch.from_numpy(rng.permutation(num_rows(batch[0]))))


def _cut(batch: Batch, rows: int, batch_size: int) -> Iterator[Batch]:
    for start in range(0, rows, batch_size):
        yield _rows(batch, slice(start, min(start + batch_size, rows)))
