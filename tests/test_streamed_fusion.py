"""Frozen fusion streamed from Parquet files (several files, several row groups) matches the in-memory
path, and keeps component outputs in memory-mapped files aligned with the table's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusion.akf.cache import ComponentCache
from fusion.akf.components import ComponentRunner
from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.sources import FusionSource, plan_levels
from fusion.akf.validation import FusionInputError
from fusion.data.census import CensusData
from fusion.data.tables import FrameTable, ParquetTable
from fusion.training import TrainConfig

TRAINING = TrainConfig(batch_size=256, max_epochs=2, patience=2, device="cpu")


def write_parquet(frame: pd.DataFrame, folder: Path, files: int = 3, row_group_size: int = 500) -> ParquetTable:
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        part = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        pq.write_table(part, folder / f"part{i}.parquet", row_group_size=row_group_size)
    return ParquetTable(folder)


def test_streamed_frozen_fusion_matches_the_in_memory_path(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    train, validation = census_small.train.head(4000), census_small.validation.head(2000)
    streamed_data = FusionData(write_parquet(train, tmp_path / "train"), write_parquet(validation, tmp_path / "val"))
    assert len(streamed_data.train.chunks) == 9, "three files of 1,334 rows: row groups of 500, 500 and 334"
    settings = FusionSettings(training=TRAINING)
    in_memory = fuse(census_small.tasks, trained_sources, FusionData(train, validation), settings)
    streamed = fuse(census_small.tasks, trained_sources, streamed_data, settings)
    for memory_task, streamed_task in zip(in_memory.report.tasks, streamed.report.tasks, strict=True):
        assert streamed_task.fused.validation == pytest.approx(memory_task.fused.validation, abs=0.002)
        assert streamed_task.sources == memory_task.sources, "source scores come from the same component outputs"
    assert streamed.report.component_outputs.startswith("stored shards on disk")


def test_component_output_shards_follow_the_table_order(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    runner = ComponentRunner(trained_sources[0], plan_levels(trained_sources[0], 3))
    frame = census_small.validation.head(1500)
    whole = ComponentCache(tmp_path / "whole").outputs(runner, FrameTable(frame, chunk_rows=5000))
    table = write_parquet(frame, tmp_path / "pq", row_group_size=250)
    chunked = ComponentCache(tmp_path / "chunked").outputs(runner, table)
    assert len(list(chunked.folder.glob("shard-*.levels.npy"))) == len(chunked.table.chunks) == 6
    (only,) = whole.table.chunks
    expected = whole.read(only)
    parts = [chunked.read(chunk) for chunk in chunked.table.chunks]
    for level, values in enumerate(expected.levels):
        assert values.shape == (len(frame), runner.plan.widths[level])
        np.testing.assert_allclose(np.concatenate([part.levels[level] for part in parts]), values, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([part.output for part in parts]), expected.output, atol=1e-6)


def test_inputs_are_checked_chunk_by_chunk_one_problem_per_column(
    census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    validation = census_small.validation.head(400).copy()
    validation.loc[[10, 300], "education"] = [10_000, 20_000]  # in the first and the fifth chunk
    data = FusionData(census_small.train.head(400), FrameTable(validation, chunk_rows=64))
    with pytest.raises(FusionInputError) as error:
        fuse(census_small.tasks, trained_sources, data, FusionSettings(training=TRAINING))
    education = [problem for problem in error.value.problems if "'education'" in problem]
    assert len(education) == len({source.name for source in trained_sources}), "one line per model reading it"
    assert all("validation column 'education' has ids" in problem for problem in education)
