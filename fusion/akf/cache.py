"""Component outputs of source models, computed once per (data set, model) with ONNX Runtime.

The `frozen` strategy trains only the fusion network, so the source components' outputs never change:
they are computed in one pass over the data and reused by every epoch, and, with a cache directory,
by every later job on the same data and model. They are computed chunk by chunk and written into
memory-mapped .npy files (one per fusion level, one for the source's output, rows in the table's
order), so neither computing nor reading them needs the whole array in memory. Entries are large
(rows x the widths of the fused components, in float32), so a cache directory holds at most
`max_bytes`: storing an entry evicts the least recently used others. Without a cache directory, a job
keeps its entries in a temporary folder (`component_store`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.akf.sources import FusionSource, LevelPlan
from fusion.data.tables import Table, as_table
from fusion.onnx_runtime import create_session, run_session, with_outputs
from fusion.training import Cancelled


@dataclass(frozen=True)
class SourceOutputs:
    """One source model on one data set: each level's component output [rows, width], and its own
    output, as read-only memory maps whose rows follow the table's row order."""

    levels: tuple[np.ndarray, ...]
    output: np.ndarray

    @property
    def nbytes(self) -> int:
        return sum(values.nbytes for values in self.levels) + self.output.nbytes


_PARTIAL = ".partial-"


class ComponentCache:
    """Computes SourceOutputs into files under `root` and keeps them there for later jobs."""

    def __init__(
        self, root: Path | None = None, max_bytes: int | None = None, should_stop: Callable[[], bool] | None = None
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.should_stop = should_stop
        """Asked between chunks: a cancelled job stops within one chunk, not after a pass over all rows."""

    def outputs(self, source: FusionSource, plan: LevelPlan, data: Table | pd.DataFrame) -> SourceOutputs:
        if self.root is None:
            raise ValueError("a ComponentCache without a root folder stores nothing; use component_store()")
        table = as_table(data)
        folder = self.root / _key(source, plan, table)
        try:
            outputs = _load(folder, len(plan.tensors))
            os.utime(folder)  # the folder's time orders eviction: this entry was used now
            return outputs
        except OSError:  # not stored, or evicted by another job while it was being read
            pass
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Written into a scratch folder and renamed into place, so readers never see half an entry.
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=scratch_prefix()))
        try:
            compute_outputs(source, plan, table, scratch, self.should_stop)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        try:
            scratch.rename(folder)
        except OSError:  # another job stored the same entry first; theirs is identical
            shutil.rmtree(scratch, ignore_errors=True)
        if self.max_bytes is not None:
            _evict(self.root, self.max_bytes, keep=folder)
        return _load(folder, len(plan.tensors))


@contextmanager
def component_store(cache: ComponentCache | None) -> Iterator[ComponentCache]:
    """`cache` when it has a folder; otherwise a cache in a temporary folder, removed on exit (open
    memory maps stay readable until dropped: the files are only unlinked)."""
    if cache is not None and cache.root is not None:
        yield cache
        return
    with tempfile.TemporaryDirectory(prefix="fusebox-components-") as folder:
        yield ComponentCache(Path(folder), should_stop=cache.should_stop if cache is not None else None)


def compute_outputs(
    source: FusionSource, plan: LevelPlan, table: Table, folder: Path, should_stop: Callable[[], bool] | None = None
) -> None:
    """Run the source once per chunk (one session for all chunks) and write each level's component
    output and the source's output into level{i}.npy and output.npy under `folder`. Raises Cancelled
    when `should_stop` answers True before a chunk."""
    unique = list(dict.fromkeys(plan.tensors))
    output_name = source.signature.output_name
    session = create_session(with_outputs(source.model, unique))
    files: dict[str, np.memmap] = {}
    for chunk in table.chunks:
        if should_stop is not None and should_stop():
            raise Cancelled(f"stopped while computing the outputs of model '{source.name}'")
        results = run_session(session, source.feed(table.read(chunk, source.columns)), [*unique, output_name])
        values = {f"level{i}": results[name].reshape(chunk.rows, -1) for i, name in enumerate(plan.tensors)}
        values["output"] = results[output_name]
        for name, array in values.items():
            if name not in files:
                files[name] = np.lib.format.open_memmap(
                    folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(table.num_rows, *array.shape[1:])
                )
            files[name][chunk.start : chunk.stop] = array
    for array in files.values():
        array.flush()


def scratch_prefix(pid: int | None = None) -> str:
    """Scratch folders carry the process id: what a killed job process left is found by it (worker/job_process.py)."""
    return f"{_PARTIAL}{os.getpid() if pid is None else pid}-"


def _key(source: FusionSource, plan: LevelPlan, table: Table) -> str:
    digest = hashlib.sha256(source.loaded.to_bytes())
    digest.update("\n".join(plan.tensors).encode())
    for spec in source.signature.inputs:
        digest.update(f"{spec.name}={list(source.columns_of(spec.name))}".encode())
    digest.update(table.fingerprint(source.columns).encode())
    return digest.hexdigest()[:40]


def _load(folder: Path, levels: int) -> SourceOutputs:
    return SourceOutputs(
        levels=tuple(np.load(folder / f"level{i}.npy", mmap_mode="r") for i in range(levels)),
        output=np.load(folder / "output.npy", mmap_mode="r"),
    )


def _evict(root: Path, max_bytes: int, keep: Path) -> None:
    """Remove the least recently used entries, but never `keep`, until the cache holds at most max_bytes."""
    entries = []
    for folder in root.iterdir():
        if folder.name.startswith(_PARTIAL) or not folder.is_dir():
            continue
        try:
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
