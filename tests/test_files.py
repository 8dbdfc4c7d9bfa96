"""Data files as the command line opens them: chunked tables, a CSV file streamed into a Parquet copy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.data import files
from fusion.data.files import open_table
from fusion.data.tables import read_all


def test_a_csv_file_becomes_a_parquet_table_one_row_group_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"id": np.arange(5000) % 7, "value": np.linspace(0, 1, 5000), "label": np.arange(5000) % 2})
    frame.loc[3, "label"] = np.nan
    frame.to_csv(tmp_path / "train.csv", index=False)
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 16_384)  # small blocks: several row groups
    table = open_table(tmp_path / "train.csv", tmp_path / "scratch")
    assert len(table.chunks) > 3 and table.num_rows == 5000
    read = read_all(table, ["id", "value", "label"])
    assert read["id"].dtype == np.int64 and read["value"].dtype == np.float64
    pd.testing.assert_frame_equal(read, frame, check_dtype=False)


def test_parquet_is_read_in_place_and_other_files_are_refused(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "part.parquet")
    table = open_table(tmp_path / "part.parquet", tmp_path / "scratch")
    assert table.num_rows == 2 and not (tmp_path / "scratch").exists(), "nothing copied"
    (tmp_path / "data.xlsx").write_bytes(b"not a table")
    with pytest.raises(ValueError, match=re.escape("unsupported file type '.xlsx'; use .csv or .parquet")):
        open_table(tmp_path / "data.xlsx", tmp_path / "scratch")
