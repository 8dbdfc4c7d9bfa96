"""Component outputs of source models, computed once per (data set, model) with ONNX Runtime.

The `frozen` strategy trains only the fusion network, so the source components' outputs never change:
they are computed in one pass over the data and reused by every epoch, and, with a cache directory,
by every later job on the same data and model. Entries are large (rows x the widths of the fused
components, in float32), so a cache directory holds at most `max_bytes`: storing an entry evicts the
least recently used others.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.akf.sources import FusionSource, LevelPlan
from fusion.onnx_runtime import create_session, run_session, with_outputs


@dataclass(frozen=True)
class SourceOutputs:
    """One source model on one data set: each level's component output [rows, width], and its own output."""

    levels: tuple[np.ndarray, ...]
    output: np.ndarray


_PARTIAL = ".partial-"


class ComponentCache:
    """Computes SourceOutputs, keeping them on disk under `root` when one is given."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def outputs(self, source: FusionSource, plan: LevelPlan, frame: pd.DataFrame) -> SourceOutputs:
        if self.root is None:
            return compute_outputs(source, plan, frame)
        folder = self.root / _key(source, plan, frame)
        try:
            outputs = _load(folder, len(plan.tensors))
            os.utime(folder)  # the folder's time orders eviction: this entry was used now
            return outputs
        except OSError:  # not stored, or evicted by another job while it was being read
            pass
        outputs = compute_outputs(source, plan, frame)
        _store(folder, outputs)
        if self.max_bytes is not None:
            _evict(self.root, self.max_bytes, keep=folder)
        return outputs


def compute_outputs(source: FusionSource, plan: LevelPlan, frame: pd.DataFrame) -> SourceOutputs:
    unique = list(dict.fromkeys(plan.tensors))
    session = create_session(with_outputs(source.model, unique))
    output_name = source.signature.output_name
    results = run_session(session, source.feed(frame), [*unique, output_name])
    flat = {name: np.ascontiguousarray(results[name].reshape(len(frame), -1), dtype=np.float32) for name in unique}
    return SourceOutputs(
        levels=tuple(flat[name] for name in plan.tensors),
        output=np.ascontiguousarray(results[output_name], dtype=np.float32),
    )


def _key(source: FusionSource, plan: LevelPlan, frame: pd.DataFrame) -> str:
    digest = hashlib.sha256(source.loaded.to_bytes())
    digest.update("\n".join(plan.tensors).encode())
    for spec in source.signature.inputs:
        columns = list(source.columns_of(spec.name))
        digest.update(f"{spec.name}={columns}".encode())
        digest.update(pd.util.hash_pandas_object(frame[columns], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:40]


def _load(folder: Path, levels: int) -> SourceOutputs:
    return SourceOutputs(
        levels=tuple(np.load(folder / f"level{i}.npy", allow_pickle=False) for i in range(levels)),
        output=np.load(folder / "output.npy", allow_pickle=False),
    )


def _store(folder: Path, outputs: SourceOutputs) -> None:
    """Write into a scratch folder and rename it into place, so readers never see half an entry."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_PARTIAL))
    for i, values in enumerate(outputs.levels):
        np.save(scratch / f"level{i}.npy", values, allow_pickle=False)
    np.save(scratch / "output.npy", outputs.output, allow_pickle=False)
    try:
        scratch.rename(folder)
    except OSError:  # another job stored the same entry first; theirs is identical
        shutil.rmtree(scratch, ignore_errors=True)


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
