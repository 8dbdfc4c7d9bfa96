"""Where the `frozen` strategy gets its source component outputs, chosen per job.

- stored: computed once per (data, model) into shards on disk (cache.py), read per chunk; float16 when
  rounding to it moves no output by more than the export tolerance (measured on a sample), else float32;
- per-batch: computed by ONNX Runtime from each chunk's input columns as training (or scoring) reads it,
  when the stored outputs of all splits would not fit the byte budget: nothing is written, and every
  epoch runs the source models again.

Either way a split reads one chunk's outputs at a time: the whole array is never in memory. A chunk's
outputs depend only on its rows, so a resumed job replays the same batches on both paths.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fusion.akf.cache import ComponentCache, StoredOutputs
from fusion.akf.components import ComponentOutputs, ComponentRunner, row_bytes
from fusion.data.tables import Chunk, Table, read_head

DEFAULT_BUDGET_BYTES = 20 * 2**30
"""Disk for stored outputs when the cache names no size: the service's default cache size."""
FLOAT16_SAMPLE_ROWS = 4096
"""Validation rows the float16 rounding error is measured on."""
STATISTICS_ROWS = 50_000


class ComponentPath(StrEnum):
    AUTO = "auto"
    STORED = "stored"
    PER_BATCH = "per-batch"


@dataclass(frozen=True)
class ComponentChoice:
    path: ComponentPath
    dtype: np.dtype
    stored_bytes: int
    """What storing every split's outputs in `dtype` takes on disk (estimated from the widths)."""
    reason: str


def choose_path(
    runners: list[ComponentRunner],
    splits: dict[str, Table],
    budget_bytes: int,
    tolerance: float,
    requested: ComponentPath = ComponentPath.AUTO,
) -> ComponentChoice:
    """Stored when the outputs fit `budget_bytes` (in float16 if its error on a validation sample is
    within `tolerance`), otherwise per batch; `requested` forces a path."""
    columns = list(dict.fromkeys(column for runner in runners for column in runner.source.columns))
    sample = read_head(splits["validation"], columns, FLOAT16_SAMPLE_ROWS)
    error = float16_error(runners, sample)
    half = error <= tolerance
    dtype = np.dtype(np.float16 if half else np.float32)
    rows = sum(table.num_rows for table in splits.values())
    per_row = sum(row_bytes(r.plan, r.source.signature.output_width, dtype.itemsize) for r in runners)
    needed = rows * per_row
    precision = (
        f"float16 (rounding moves outputs by at most {error:.1e}, within the export tolerance {tolerance:.0e})"
        if half
        else f"float32 (float16 would move outputs by up to {error:.1e}, over the export tolerance {tolerance:.0e})"
    )
    size = f"{needed / 1e6:,.1f} MB ({per_row:,} bytes a row x {rows:,} rows)"
    if requested == ComponentPath.PER_BATCH or (requested == ComponentPath.AUTO and needed > budget_bytes):
        why = "as asked" if requested == ComponentPath.PER_BATCH else f"budget {budget_bytes / 1e6:,.1f} MB"
        return ComponentChoice(
            ComponentPath.PER_BATCH,
            np.dtype(np.float32),
            needed,
            f"computed per batch with ONNX Runtime: stored outputs would take {size}, {why}",
        )
    why = "as asked" if requested == ComponentPath.STORED else f"within the budget of {budget_bytes / 1e6:,.1f} MB"
    return ComponentChoice(
        ComponentPath.STORED, dtype, needed, f"stored shards on disk, read per chunk, {precision}, {size} {why}"
    )


def budget_of(cache: ComponentCache) -> int:
    """The cache's size (0: store nothing), or the default, and never more than its disk has free."""
    assert cache.root is not None
    cache.root.mkdir(parents=True, exist_ok=True)
    size = DEFAULT_BUDGET_BYTES if cache.max_bytes is None else cache.max_bytes
    return min(size, shutil.disk_usage(Path(cache.root)).free)


def float16_error(runners: list[ComponentRunner], frame: pd.DataFrame) -> float:
    """The largest change rounding to float16 makes to any source's outputs on `frame` (inf on overflow)."""
    largest = 0.0
    for runner in runners:
        outputs = runner(frame)
        for values in (*outputs.levels, outputs.output):
            if values.size:
                rounded = values.astype(np.float16).astype(np.float32)
                with np.errstate(invalid="ignore", over="ignore"):
                    largest = max(largest, float(np.max(np.abs(rounded - values))))
    return largest if np.isfinite(largest) else float("inf")


@dataclass(frozen=True)
class SplitComponents:
    """Every source's component outputs on one split, chunk by chunk: read from stored shards, or computed
    from the chunk's input columns (which `columns` then names, for the caller to read with its own)."""

    table: Table
    runners: list[ComponentRunner]
    stored: list[StoredOutputs] | None = None

    @property
    def columns(self) -> list[str]:
        if self.stored is not None:
            return []
        return list(dict.fromkeys(column for runner in self.runners for column in runner.source.columns))

    def read(self, chunk: Chunk, frame: pd.DataFrame | None = None) -> list[ComponentOutputs]:
        """Each source's outputs for the chunk; `frame` holds its `columns` when the caller read them."""
        if self.stored is not None:
            return [stored.read(chunk) for stored in self.stored]
        if frame is None:
            frame = self.table.read(chunk, self.columns)
        return [runner(frame) for runner in self.runners]

    def read_outputs(self, chunk: Chunk, frame: pd.DataFrame | None = None) -> list[np.ndarray]:
        """Each source's own output for the chunk: stored, it is read without the (far wider) levels."""
        if self.stored is not None:
            return [stored.read_output(chunk) for stored in self.stored]
        return [outputs.output for outputs in self.read(chunk, frame)]

    def source_outputs(self) -> list[np.ndarray]:
        """Each source's own output for every row, in order: a few values a row, for scoring the sources."""
        parts: list[list[np.ndarray]] = [[] for _ in self.runners]
        for chunk in self.table.chunks:
            for part, output in zip(parts, self.read_outputs(chunk), strict=True):
                part.append(output)
        return [np.concatenate(part) for part in parts]

    def level_statistics(self, seed: int = 0) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Per source, each level's mean and std over chunks drawn in a seeded order until STATISTICS_ROWS
        rows: they only set the projections' initial scale, and a sample estimates them as well as every
        row would."""
        order = np.random.default_rng(seed).permutation(len(self.table.chunks))
        samples: list[list[list[np.ndarray]]] = [[[] for _ in r.plan.tensors] for r in self.runners]
        taken = 0
        for index in order:
            if taken >= STATISTICS_ROWS:
                break
            chunk = self.table.chunks[index]
            for per_level, outputs in zip(samples, self.read(chunk), strict=True):
                for level, values in zip(per_level, outputs.levels, strict=True):
                    level.append(values[: STATISTICS_ROWS - taken])
            taken += min(chunk.rows, STATISTICS_ROWS - taken)
        statistics = []
        for per_level in samples:
            joined = [np.concatenate(level) for level in per_level]
            statistics.append([(torch.from_numpy(v.mean(axis=0)), torch.from_numpy(v.std(axis=0))) for v in joined])
        return statistics
