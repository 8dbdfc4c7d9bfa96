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
    """One epoch of batches in an order fixed by (seed, epoch). At most about one buffer (buffer_rows
    plus one chunk) is held: chunks are moved into the shuffled buffer one by one and freed, and batches
    are copies, so that the last one a caller still holds does not keep the whole buffer alive while the
    next one fills (with wide rows, 4 KB each, a buffer is half a gigabyte)."""
    rng = np.random.default_rng([seed, epoch])
    buffer_rows = max(buffer_rows, batch_size)
    pending: list[Batch] = []
    pending_rows = 0
    for index in rng.permutation(len(source.chunks)):
        pending.append(source.load(source.chunks[index]))
        pending_rows += num_rows(pending[-1][0])
        if pending_rows < buffer_rows:
            continue
        shuffled = _shuffled(pending, rng)
        full = pending_rows - pending_rows % batch_size
        if full < pending_rows:  # carried over as a copy: a view would keep the whole buffer
            pending.append(_copy(_rows(shuffled, slice(full, pending_rows))))
        pending_rows -= full
        yield from _cut_copies(shuffled, full, batch_size)
        del shuffled
    if pending:
        yield from _cut_copies(_shuffled(pending, rng), pending_rows, batch_size)


def sequential_batches(source: ChunkSource, batch_size: int) -> Iterator[Batch]:
    """Every row once, in the table's order (for scoring)."""
    for chunk in source.chunks:
        batch = source.load(chunk)
        yield from _cut(batch, num_rows(batch[0]), batch_size)


def _shuffled(parts: list[Batch], rng: np.random.Generator) -> Batch:
    """The rows of `parts`, concatenated, in the order of rng.permutation(rows): each part is copied to its
    rows' places in one new buffer and dropped from `parts` (which ends empty), so the concatenation is
    never held beside the buffer."""
    total = sum(num_rows(part[0]) for part in parts)
    destination = torch.from_numpy(np.argsort(rng.permutation(total)))  # where each concatenated row goes
    features = {name: torch.empty((total, *t.shape[1:]), dtype=t.dtype) for name, t in parts[0][0].items()}
    labels = {name: torch.empty((total, *t.shape[1:]), dtype=t.dtype) for name, t in parts[0][1].items()}
    start = 0
    while parts:
        part_features, part_labels = parts.pop(0)
        rows = destination[start : start + num_rows(part_features)]
        for table, part in ((features, part_features), (labels, part_labels)):
            for name, values in part.items():
                table[name].index_copy_(0, rows, values)
        start += len(rows)
    return features, labels


def _rows(batch: Batch, rows: torch.Tensor | slice) -> Batch:
    return take(batch[0], rows), take(batch[1], rows)


def _copy(batch: Batch) -> Batch:
    return {n: t.clone() for n, t in batch[0].items()}, {n: t.clone() for n, t in batch[1].items()}


def _cut(batch: Batch, rows: int, batch_size: int) -> Iterator[Batch]:
    for start in range(0, rows, batch_size):
        yield _rows(batch, slice(start, min(start + batch_size, rows)))


def _cut_copies(batch: Batch, rows: int, batch_size: int) -> Iterator[Batch]:
    for part in _cut(batch, rows, batch_size):
        yield _copy(part)
