"""Source component outputs stored on disk: one shard per (table chunk, model), reused by every epoch.

The `frozen` strategy trains only the fusion network, so the source components' outputs never change.
When they fit their byte budget (component_path.py decides), they are computed in one pass and kept as
shards: for each chunk of the table (a Parquet row group), `compute_shard` runs the source once with
ONNX Runtime and writes the chunk's level outputs and the source's output into two .npy files. A shard
depends only on (chunk, model), so shards can be computed in any order, by any process, and a missing
one is recomputed alone. A chunk is read with plain file reads into arrays of its own, not memory-mapped:
mapped file pages count in the reading process's resident memory for as long as the mapping lives (a
whole-table mapping read through once made the worker's RSS grow with the rows). The file pages stay in
the kernel's page cache, which gives them back under pressure, so repeated epochs still read from memory.

With a cache directory, a stored entry is kept for later jobs on the same data and model, and the
directory holds at most `max_bytes`: storing an entry evicts the least recently used others. Without
one, a job keeps its entries in a temporary folder (`component_store`).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.akf.components import ComponentOutputs, ComponentRunner
from fusion.akf.sources import FusionSource, LevelPlan
from fusion.data.tables import Chunk, Table, as_table
from fusion.training import Cancelled

FLOAT32 = np.dtype(np.float32)
_PARTIAL = ".partial-"
_COMPLETE = "complete"
"""Written last into an entry: an entry without it was interrupted, and its missing shards are computed."""
_WRITING_S = 3600
"""An unfinished entry whose folder changed this recently is being written: eviction leaves it alone."""


@dataclass(frozen=True)
class StoredOutputs:
    """One source model's outputs on one table, as shards in `folder`, read chunk by chunk."""

    folder: Path
    runner: ComponentRunner
    table: Table

    def read(self, chunk: Chunk) -> ComponentOutputs:
        """The chunk's rows as float32 arrays of their own, whatever the stored precision. A shard that
        another job's cache eviction removed meanwhile is computed again, in memory only."""
        try:
            levels = _read(shard_path(self.folder, chunk, "levels"))
            output = _read(shard_path(self.folder, chunk, "output"))
        except FileNotFoundError:
            return self.runner(self.table.read(chunk, self.runner.source.columns))
        return self.split(levels, output)

    def read_output(self, chunk: Chunk) -> np.ndarray:
        """The model's own output on the chunk's rows (a few values a row), without the levels' shard."""
        try:
            return _read(shard_path(self.folder, chunk, "output"))
        except FileNotFoundError:
            return self.read(chunk).output

    def split(self, levels: np.ndarray, output: np.ndarray) -> ComponentOutputs:
        """Side-by-side levels [rows, sum of widths] back into one array per level."""
        widths = self.runner.plan.widths
        bounds = np.cumsum([0, *widths])
        return ComponentOutputs(
            levels=tuple(levels[:, start:stop] for start, stop in itertools.pairwise(bounds)),
            output=output,
        )

    @property
    def nbytes(self) -> int:
        return sum(path.stat().st_size for path in self.folder.glob("*.npy"))


def _read(path: Path) -> np.ndarray:
    """The file's array, read (not mapped) into memory of its own, as float32."""
    values = np.load(path)
    return values if values.dtype == np.float32 else values.astype(np.float32)


def shard_path(folder: Path, chunk: Chunk, part: str) -> Path:
    return folder / f"shard-{chunk.index:06d}.{part}.npy"


def compute_shard(
    runner: ComponentRunner, table: Table, chunk: Chunk, folder: Path, dtype: np.dtype = FLOAT32
) -> tuple[Path, Path]:
    """The component pass for one chunk and one model: reads the chunk's input columns, runs the source,
    writes the levels (side by side, [rows, sum of widths]) and the output into two files, and returns
    their paths. Pure in (table chunk, model, dtype): the same inputs write the same files, so chunks
    can be shared out to any number of processes. Each file is written under a scratch name and renamed,
    so a reader never sees half a shard."""
    outputs = runner(table.read(chunk, runner.source.columns))
    parts = {"levels": np.concatenate(outputs.levels, axis=1), "output": outputs.output}
    paths = []
    for part, values in parts.items():
        path = shard_path(folder, chunk, part)
        scratch = path.with_name(f"{scratch_prefix()}{path.name}")
        np.save(scratch, values.astype(dtype, copy=False))
        os.replace(scratch, path)
        paths.append(path)
    return paths[0], paths[1]


class ComponentCache:
    """Stores StoredOutputs under `root` and keeps them there for later jobs."""

    def __init__(
        self, root: Path | None = None, max_bytes: int | None = None, should_stop: Callable[[], bool] | None = None
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.should_stop = should_stop
        """Asked between chunks: a cancelled job stops within one chunk, not after a pass over all rows."""

    def outputs(self, runner: ComponentRunner, data: Table | pd.DataFrame, dtype: np.dtype = FLOAT32) -> StoredOutputs:
        """The runner's outputs on `data`, computed into the cache unless an entry holds them. The caller's
        runner computes every split, so that one ONNX Runtime session per model serves the whole pass."""
        if self.root is None:
            raise ValueError("a ComponentCache without a root folder stores nothing; use component_store()")
        table = as_table(data)
        source = runner.source
        folder = self.root / _key(source, runner.plan, table, dtype)
        stored = StoredOutputs(folder, runner, table)
        if (folder / _COMPLETE).exists():
            try:
                os.utime(folder)  # the folder's time orders eviction: this entry was used now
                return stored
            except OSError:  # evicted by another job meanwhile
                pass
        folder.mkdir(parents=True, exist_ok=True)
        for chunk in table.chunks:
            if self.should_stop is not None and self.should_stop():
                raise Cancelled(f"stopped while computing the outputs of model '{source.name}'")
            if not shard_path(folder, chunk, "output").exists():  # an interrupted pass left the others
                compute_shard(runner, table, chunk, folder, dtype)
        (folder / _COMPLETE).touch()
        if self.max_bytes is not None:
            _evict(self.root, self.max_bytes, keep=folder)
        return stored


@contextmanager
def component_store(cache: ComponentCache | None) -> Iterator[ComponentCache]:
    """`cache` when it has a folder; otherwise a cache in a temporary folder, removed on exit."""
    if cache is not None and cache.root is not None:
        yield cache
        return
    with tempfile.TemporaryDirectory(prefix="fusebox-components-") as folder:
        yield ComponentCache(Path(folder), should_stop=cache.should_stop if cache is not None else None)


def scratch_prefix(pid: int | None = None) -> str:
    """Shards are written under names that carry the process id: what a killed job process left half
    written is found by it (worker/runner.py)."""
    return f"{_PARTIAL}{os.getpid() if pid is None else pid}-"


def _key(source: FusionSource, plan: LevelPlan, table: Table, dtype: np.dtype) -> str:
    digest = hashlib.sha256(source.loaded.to_bytes())
    digest.update("\n".join(plan.tensors).encode())
    for spec in source.signature.inputs:
        digest.update(f"{spec.name}={list(source.columns_of(spec.name))}".encode())
    digest.update(table.fingerprint(source.columns).encode())
    # The chunking names the shards: the same rows cut otherwise are another entry.
    digest.update(f"{[(c.index, c.start, c.rows) for c in table.chunks]}|{np.dtype(dtype).str}".encode())
    return digest.hexdigest()[:40]


def _evict(root: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used entries, but never `keep`, until the cache holds at most max_bytes."""
    entries = []
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        try:
            if not (folder / _COMPLETE).exists() and time.time() - folder.stat().st_mtime < _WRITING_S:
                continue  # another job is still writing it
            entries.append((folder.stat().st_mtime, sum(f.stat().st_size for f in folder.iterdir()), folder))
        except OSError:  # removed by another job meanwhile
            continue
    total = sum(size for _, size, _ in entries)
    for _, size, folder in sorted(entries):
        if total <= max_bytes:
            break
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
