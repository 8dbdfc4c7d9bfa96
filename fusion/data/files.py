"""Reading tabular files, and carving a validation set out of training rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in {".csv", ".txt"}:
        return pd.read_csv(path)
    raise ValueError(f"{path}: unsupported file type '{suffix}'; use .csv or .parquet")


def split_validation(frame: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation): a random `fraction` of rows, fixed by `seed`, becomes validation. For a frame
    the CLI has read; the engine splits tables without reading them (fusion.data.tables.split_table)."""
    rows = np.random.default_rng(seed).permutation(len(frame))
    cut = max(1, round(len(frame) * fraction))
    validation = frame.iloc[np.sort(rows[:cut])].reset_index(drop=True)
    train = frame.iloc[np.sort(rows[cut:])].reset_index(drop=True)
    return train, validation
