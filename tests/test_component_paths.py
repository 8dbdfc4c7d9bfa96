"""The frozen strategy's two component paths: stored shards and per-batch ONNX Runtime, chosen by budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fusion.akf.cache import ComponentCache
from fusion.akf.component_path import ComponentPath, SplitComponents, choose_path, float16_error
from fusion.akf.components import ComponentRunner
from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.sources import FusionSource, plan_levels
from fusion.data.census import CensusData
from fusion.data.tables import Table
from fusion.training import Cancelled, Progress, TrainConfig, checkpoint_epoch
from tests.test_streamed_fusion import write_parquet

TRAINING = TrainConfig(batch_size=256, max_epochs=2, patience=2, device="cpu")


def runners_of(sources: list[FusionSource]) -> list[ComponentRunner]:
    return [ComponentRunner(source, plan_levels(source, 3)) for source in sources]


def streamed(census_small: CensusData, folder: Path, rows: int = 4000) -> FusionData:
    train, validation = census_small.train.head(rows), census_small.validation.head(rows // 2)
    return FusionData(write_parquet(train, folder / "train"), write_parquet(validation, folder / "validation"))


def test_per_batch_outputs_equal_the_stored_ones(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    table = write_parquet(census_small.validation.head(1500), tmp_path / "data")
    runners = runners_of(trained_sources)
    cache = ComponentCache(tmp_path / "cache")
    stored = SplitComponents(table, runners, [cache.outputs(runner, table) for runner in runners])
    per_batch = SplitComponents(table, runners)
    assert stored.columns == [] and set(per_batch.columns) >= {"age", "education"}
    for chunk in table.chunks:
        for a, b in zip(stored.read(chunk), per_batch.read(chunk), strict=True):
            assert len(a.output) == chunk.rows
            for x, y in zip((*a.levels, a.output), (*b.levels, b.output), strict=True):
                np.testing.assert_allclose(x, y, atol=1e-6)


def test_both_paths_fuse_to_the_same_validation_auc(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    data = streamed(census_small, tmp_path)
    results = {
        path: fuse(census_small.tasks, trained_sources, data, FusionSettings(training=TRAINING, component_path=path))
        for path in (ComponentPath.STORED, ComponentPath.PER_BATCH)
    }
    stored, per_batch = results[ComponentPath.STORED].report, results[ComponentPath.PER_BATCH].report
    assert stored.component_outputs.startswith("stored shards on disk, read per chunk, float32")
    assert stored.component_outputs.endswith("17.9 MB stored in a temporary folder, removed after the job")
    assert per_batch.component_outputs.startswith("computed per batch with ONNX Runtime")
    for a, b in zip(stored.tasks, per_batch.tasks, strict=True):
        assert b.fused.validation == pytest.approx(a.fused.validation, abs=0.002)
        assert b.sources == a.sources, "the same source outputs, however they reach the fusion"


def test_auto_picks_per_batch_when_the_stored_outputs_exceed_the_budget(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    data = streamed(census_small, tmp_path, rows=1000)
    splits: dict[str, Table] = data.tables()
    runners = runners_of(trained_sources)
    roomy = choose_path(runners, splits, budget_bytes=10**12, tolerance=1e-5)
    assert roomy.path == ComponentPath.STORED and "within the budget" in roomy.reason
    tight = choose_path(runners, splits, budget_bytes=roomy.stored_bytes - 1, tolerance=1e-5)
    assert tight.path == ComponentPath.PER_BATCH and f"budget {(roomy.stored_bytes - 1) / 1e6:,.1f} MB" in tight.reason

    cache = ComponentCache(tmp_path / "cache", max_bytes=roomy.stored_bytes // 2)
    result = fuse(census_small.tasks, trained_sources, data, FusionSettings(training=TRAINING), cache=cache)
    assert result.report.component_outputs.startswith("computed per batch with ONNX Runtime: stored outputs would")
    assert not any((tmp_path / "cache").iterdir()), "nothing stored"


def test_float16_is_used_only_within_the_tolerance(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    data = streamed(census_small, tmp_path, rows=1000)
    splits: dict[str, Table] = data.tables()
    runners = runners_of(trained_sources)
    error = float16_error(runners, census_small.validation.head(4096))
    assert 0 < error < 0.1, "rounding to float16 moves these outputs, a little"
    strict = choose_path(runners, splits, budget_bytes=10**12, tolerance=error / 2)
    assert strict.dtype == np.float32 and f"float16 would move outputs by up to {error:.1e}" in strict.reason
    loose = choose_path(runners, splits, budget_bytes=10**12, tolerance=error * 2)
    assert loose.dtype == np.float16 and loose.stored_bytes * 2 == strict.stored_bytes

    table = splits["validation"]
    runner = runners[0]
    half = ComponentCache(tmp_path / "half").outputs(runner, table, loose.dtype)
    assert all(np.load(path).dtype == np.float16 for path in half.folder.glob("*.npy"))
    chunk = table.chunks[0]
    read, exact = half.read(chunk), runner(table.read(chunk, runner.source.columns))
    assert read.output.dtype == np.float32
    for x, y in zip((*read.levels, read.output), (*exact.levels, exact.output), strict=True):
        assert np.max(np.abs(x - y)) <= error * 2


def test_a_per_batch_job_stopped_inside_an_epoch_resumes_there(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    data = streamed(census_small, tmp_path, rows=3000)
    training = TrainConfig(batch_size=250, max_epochs=2, patience=5, device="cpu", checkpoint_every_s=0.0)
    settings = FusionSettings(training=training, component_path=ComponentPath.PER_BATCH)
    uninterrupted = fuse(census_small.tasks, trained_sources, data, settings)

    checkpoint = tmp_path / "fusion.ckpt"
    seen: list[Progress] = []
    with pytest.raises(Cancelled):
        fuse(census_small.tasks, trained_sources, data, settings, on_progress=seen.append,
             should_cancel=lambda: seen[-1].epoch == 2 and seen[-1].step == 5 if seen else False,
             checkpoint_path=checkpoint)  # fmt: skip
    assert checkpoint_epoch(checkpoint) == 1, "epoch 1 done; epoch 2 was under way"

    resumed: list[Progress] = []
    result = fuse(census_small.tasks, trained_sources, data, settings, on_progress=resumed.append,
                  checkpoint_path=checkpoint)  # fmt: skip
    assert (resumed[0].epoch, resumed[0].step) == (2, 6), "continues after the 5 batches done in epoch 2"
    assert result.report.component_outputs.startswith("computed per batch")
    assert [r["train_loss"] for r in result.report.history] == pytest.approx(
        [r["train_loss"] for r in uninterrupted.report.history], rel=1e-5
    )
    for a, b in zip(result.report.tasks, uninterrupted.report.tasks, strict=True):
        assert a.fused.validation == pytest.approx(b.fused.validation, abs=1e-6)
