"""End-to-end fusion on a Census-Income subsample: every strategy trains, the no-regression rule holds,
the exported ONNX answers what the trained model answers, and training reports, cancels and resumes."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusion.akf.cache import ComponentCache
from fusion.akf.components import ComponentRunner
from fusion.akf.pipeline import FusionData, FusionResult, FusionSettings, fuse
from fusion.akf.sources import FusionSource, plan_levels
from fusion.akf.validation import FusionInputError
from fusion.data.census import CensusData
from fusion.metrics import task_metric
from fusion.onnx_runtime import create_session, run_session
from fusion.tasks import Task, TaskType
from fusion.training import Cancelled, Progress, TrainConfig, checkpoint_epoch

QUICK = TrainConfig(batch_size=512, max_epochs=2, patience=1, device="cpu")


def small(data: CensusData, rows: int = 6000) -> FusionData:
    return FusionData(data.train.head(rows), data.validation.head(rows // 2), data.test.head(rows // 2))


def run_exported(result: FusionResult, sources: list[FusionSource], frame: pd.DataFrame) -> dict[str, np.ndarray]:
    session = create_session(result.model)
    feed = {}
    for source in sources:
        feed.update(source.feed(frame))
    return run_session(session, {value.name: feed[value.name] for value in session.get_inputs()})


@pytest.fixture(scope="module")
def frozen(census_small: CensusData, trained_sources: list[FusionSource]) -> FusionResult:
    return fuse(
        census_small.tasks, trained_sources, small(census_small), FusionSettings(training=QUICK, baselines=("mmoe",))
    )


def test_fused_model_is_not_worse_than_the_worst_source(frozen: FusionResult, census_small: CensusData) -> None:
    for task in frozen.report.tasks:
        worst = min(score.test for score in task.sources.values())
        assert task.exported.test >= worst, task.task
        assert task.exported.validation >= max(score.validation for score in task.sources.values()), (
            "no-regression rule: the exported model is never worse on validation than the best source"
        )


def test_exported_model_answers_every_task_as_trained(
    frozen: FusionResult, census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    test = small(census_small).test
    outputs = run_exported(frozen, trained_sources, test)
    assert set(outputs) == {"income", "never_married"}
    for task in census_small.tasks:
        predictions = outputs[task.name]
        assert predictions.shape == (len(test),) and ((predictions >= 0) & (predictions <= 1)).all()
        report = next(t for t in frozen.report.tasks if t.task == task.name)
        auc = task_metric(task, predictions, test[task.label].to_numpy(dtype=np.float64))
        assert auc == pytest.approx(report.exported.test, abs=1e-6)


def test_exported_graph_reads_each_input_column_once(frozen: FusionResult, trained_sources: list[FusionSource]) -> None:
    """Every source model reshapes the input columns it reads; the fused graph does that once per column."""
    inputs = {value.name for value in frozen.model.graph.input}
    readers: dict[tuple, int] = {}
    for node in frozen.model.graph.node:
        if node.input and node.input[0] in inputs:
            key = (node.op_type, tuple(node.input), tuple(a.SerializeToString() for a in node.attribute))
            readers[key] = readers.get(key, 0) + 1
    assert readers and max(readers.values()) == 1
    per_source = sum(1 for source in trained_sources for node in source.model.graph.node if node.op_type == "Unsqueeze")
    fused = sum(1 for node in frozen.model.graph.node if node.op_type == "Unsqueeze")
    assert fused < per_source / 2


def test_report_lists_sources_fused_and_fallbacks(frozen: FusionResult) -> None:
    report = frozen.report
    assert [t.task for t in report.tasks] == ["income", "never_married"]
    for task in report.tasks:
        assert len(task.sources) == 2 and task.metric == "auc"
        # 24 Adam steps leave MMoE close to its random start (income AUC near 0.2 here): what this checks is that
        # it was scored on both splits, which gives NaN when the splits' labels or predictions do not line up.
        mmoe = task.baselines["mmoe"]
        assert math.isfinite(mmoe.validation) and math.isfinite(mmoe.test), mmoe
        if task.fell_back:
            assert task.fused.validation < task.sources[task.answered_by].validation
            assert task.exported == task.sources[task.answered_by]
    table = report.format_table()
    assert "exported model" in table and "income_mlp" in table and "baseline mmoe" in table
    assert report.trainable_parameters < report.total_parameters
    assert report.export_max_abs_diff <= 1e-5
    assert report.to_dict()["fallbacks"] == report.fallbacks


@pytest.mark.parametrize("strategy", ["adaptive", "finetune"])
def test_adaptive_strategies_train_and_export(
    strategy: str, census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    data = small(census_small, rows=3000)
    settings = FusionSettings(strategy=strategy, training=TrainConfig(batch_size=512, max_epochs=1, device="cpu"))
    result = fuse(census_small.tasks, trained_sources, data, settings)
    # fuse() itself checks the export against PyTorch (max abs diff 1e-5); check it runs independently too.
    outputs = run_exported(result, trained_sources, data.test)
    assert all(np.isfinite(values).all() for values in outputs.values())
    trainable = result.report.trainable_parameters
    frozen_sources = sum(s.decomposition.parameter_count for s in trained_sources)
    fusion_only = result.report.total_parameters - frozen_sources
    if strategy == "finetune":
        assert trainable > fusion_only, "fine-tuning trains the source components too"
    else:
        assert trainable == fusion_only, "adaptive fusion keeps the source weights frozen"


@pytest.mark.parametrize("strategy", ["adaptive", "finetune"])
def test_adaptive_strategies_stay_near_their_sources(
    strategy: str, census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    """A few hundred small steps: enough for injections in raw units to throw the sources off (the head
    diverged), and for trained scalar constants of a source graph to turn the loss into NaN."""
    training = TrainConfig(batch_size=64, max_epochs=2, learning_rate=5e-3, device="cpu")
    settings = FusionSettings(strategy=strategy, training=training)
    result = fuse(census_small.tasks, trained_sources, small(census_small, rows=6000), settings)
    assert all(np.isfinite(record["train_loss"]) for record in result.report.history)
    for task in result.report.tasks:
        worst = min(score.validation for score in task.sources.values())
        assert task.fused.validation >= worst - 0.01, f"{task.task}: {task.fused} vs sources {task.sources}"


def test_progress_cancel_and_resume(census_small: CensusData, trained_sources: list[FusionSource], tmp_path) -> None:
    data = small(census_small, rows=3000)
    settings = FusionSettings(training=TrainConfig(batch_size=500, max_epochs=3, patience=5, device="cpu"))
    checkpoint = tmp_path / "fusion.ckpt"
    seen: list[Progress] = []

    def cancel_in_second_epoch() -> bool:
        return bool(seen) and seen[-1].epoch == 2

    with pytest.raises(Cancelled):
        fuse(census_small.tasks, trained_sources, data, settings, on_progress=seen.append,
             should_cancel=cancel_in_second_epoch, checkpoint_path=checkpoint)  # fmt: skip
    assert checkpoint_epoch(checkpoint) == 1
    epoch_ends = [p for p in seen if p.validation is not None]
    assert [p.epoch for p in epoch_ends] == [1] and set(epoch_ends[0].validation) == {"income", "never_married"}

    resumed: list[Progress] = []
    result = fuse(census_small.tasks, trained_sources, data, settings, on_progress=resumed.append,
                  checkpoint_path=checkpoint)  # fmt: skip
    assert resumed[0].epoch == 2, "training resumed after the checkpointed epoch, not from epoch 1"
    assert [record["epoch"] for record in result.report.history] == [1, 2, 3]


def test_rows_without_a_label_are_left_out_of_that_task(
    census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    data = small(census_small, rows=3000)
    train = data.train.copy()
    train.loc[train.index[::2], "never_married"] = np.nan  # half the rows lack this label
    result = fuse(census_small.tasks, trained_sources, FusionData(train, data.validation, data.test),
                  FusionSettings(training=TrainConfig(batch_size=500, max_epochs=1, device="cpu")))  # fmt: skip
    assert all(np.isfinite(r["train_loss"]) for r in result.report.history)


def test_component_outputs_are_cached_across_runs(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    cache = ComponentCache(tmp_path / "cache")
    runner = ComponentRunner(trained_sources[0], plan_levels(trained_sources[0], 3))
    first = cache.outputs(runner, census_small.validation)
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1
    shards = {path: path.stat().st_mtime_ns for path in entries[0].glob("*.npy")}
    second = cache.outputs(runner, census_small.validation)
    assert {path: path.stat().st_mtime_ns for path in entries[0].glob("*.npy")} == shards, "read, not computed again"
    chunk = first.table.chunks[0]
    assert all(np.array_equal(a, b) for a, b in zip(first.read(chunk).levels, second.read(chunk).levels, strict=True))
    cache.outputs(runner, census_small.test)
    assert len(list((tmp_path / "cache").iterdir())) == 2, "another data set is another entry"


def test_component_cache_keeps_to_its_size_evicting_the_least_recently_used(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    runner = ComponentRunner(trained_sources[0], plan_levels(trained_sources[0], 3))
    frames = [census_small.validation.iloc[start : start + 500] for start in (0, 500, 1000)]
    probe = ComponentCache(tmp_path / "probe")
    probe.outputs(runner, frames[0])
    (entry,) = (tmp_path / "probe").iterdir()
    entry_bytes = sum(f.stat().st_size for f in entry.iterdir())

    root = tmp_path / "cache"
    cache = ComponentCache(root, max_bytes=2 * entry_bytes)
    first = cache.outputs(runner, frames[0])
    cache.outputs(runner, frames[1])
    time.sleep(0.05)  # folder times order the entries
    again = cache.outputs(runner, frames[0])  # read: now the most recently used
    assert np.array_equal(again.read(again.table.chunks[0]).output, first.read(first.table.chunks[0]).output)
    names = {folder.name for folder in root.iterdir()}
    cache.outputs(runner, frames[2])  # a third entry does not fit: the least recently used goes
    remaining = {folder.name for folder in root.iterdir()}
    assert len(remaining) == 2 and len(remaining - names) == 1
    evicted = names - remaining
    assert len(evicted) == 1 and entry.name not in evicted, "the entry read last stayed; the other one went"


def test_bad_inputs_are_reported_together(census_small: CensusData, trained_sources: list[FusionSource]) -> None:
    data = small(census_small, rows=200)
    broken = data.train.drop(columns=["education"]).copy()
    broken.loc[0, "income"] = 2.0
    tasks = [*census_small.tasks, Task("churn", TaskType.BINARY, "churn")]
    with pytest.raises(FusionInputError) as error:
        fuse(tasks, trained_sources, FusionData(broken, data.validation), FusionSettings(training=QUICK))
    message = str(error.value)
    assert "task 'churn' has no source model" in message
    with pytest.raises(FusionInputError) as error:
        fuse(census_small.tasks, trained_sources, FusionData(broken, data.validation), FusionSettings(training=QUICK))
    message = str(error.value)
    assert "lacks column 'education'" in message
    assert "must hold 0 or 1, found [2.0]" in message


def test_ids_outside_an_embedding_table_are_refused(
    census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    data = small(census_small, rows=200)
    validation = data.validation.copy()
    validation.loc[3, "education"] = 10_000
    with pytest.raises(FusionInputError, match=r"column 'education' has ids .* but model"):
        fuse(census_small.tasks, trained_sources, FusionData(data.train, validation), FusionSettings(training=QUICK))


def test_same_seed_same_model(census_small: CensusData, trained_sources: list[FusionSource]) -> None:
    data = small(census_small, rows=2000)
    settings = FusionSettings(training=TrainConfig(batch_size=500, max_epochs=1, seed=7, device="cpu"))
    first, second = (fuse(census_small.tasks, trained_sources, data, settings) for _ in range(2))
    assert first.report.history[0]["validation"] == second.report.history[0]["validation"]
    assert first.model.graph.initializer == second.model.graph.initializer
