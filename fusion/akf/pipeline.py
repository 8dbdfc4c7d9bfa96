"""One fusion job from start to end: plan, precompute, train, apply the no-regression rule, compare
with baselines, export, verify the export, report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import torch

from fusion.akf.baselines import train_baseline
from fusion.akf.cache import ComponentCache, SourceOutputs
from fusion.akf.export import ExportPlan, export_fused
from fusion.akf.model import AKFConfig, AKFusion, FusionLayout, SourceSlot
from fusion.akf.report import FusionReport, Score, TaskReport
from fusion.akf.sources import FusionSource, LevelPlan, plan_levels
from fusion.akf.strategies import AdaptiveFusion, FrozenFusion, frozen_table
from fusion.akf.validation import check_fusion_inputs
from fusion.data.tensor_tables import TensorTable, label_tensors
from fusion.metrics import task_metric
from fusion.onnx_runtime import create_session, run_session
from fusion.spec import DEFAULT_HYPERPARAMETERS, BaselineKind, FusionPlan, Strategy
from fusion.tasks import Task, TaskType
from fusion.training import CancelCheck, ParameterGroup, ProgressCallback, TrainConfig, fit, predict

EXPORT_TOLERANCE = {Strategy.FROZEN: 1e-5, Strategy.ADAPTIVE: 1e-4, Strategy.FINETUNE: 1e-4}
"""Largest difference allowed between the exported model (ONNX Runtime) and the trained one (PyTorch).
Under `frozen` both sides run the source graphs in ONNX Runtime and only the AKF graph differs; under the
adaptive strategies PyTorch runs the source graphs too, and float32 sums taken in another order along a
whole chain of layers can move confident class probabilities by a few 1e-5."""
STATISTICS_ROWS = 50_000


@dataclass(frozen=True)
class FusionSettings:
    strategy: Strategy = Strategy.FROZEN
    akf: AKFConfig = field(default_factory=AKFConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    finetune_learning_rate_scale: float = DEFAULT_HYPERPARAMETERS.finetune_learning_rate_scale
    """Source weights learn this much slower than the fusion network under `finetune`."""
    baselines: tuple[BaselineKind, ...] = ()
    """From-scratch multi-task models to train on the same data for comparison."""

    @classmethod
    def from_plan(cls, plan: FusionPlan, device: str | None = None) -> FusionSettings:
        """A job's settings, from the API's job spec or a spec file alike."""
        return cls(
            strategy=plan.strategy,
            akf=AKFConfig.from_hyperparameters(plan.hyperparameters),
            training=TrainConfig.from_hyperparameters(plan.hyperparameters, device),
            finetune_learning_rate_scale=plan.hyperparameters.finetune_learning_rate_scale,
            baselines=tuple(plan.baselines),
        )


@dataclass(frozen=True)
class FusionData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame | None = None


@dataclass
class FusionResult:
    model: onnx.ModelProto
    report: FusionReport


StageCallback = Callable[[str], None]


def fuse(
    tasks: list[Task],
    sources: list[FusionSource],
    data: FusionData,
    settings: FusionSettings = FusionSettings(),
    *,
    on_progress: ProgressCallback | None = None,
    on_stage: StageCallback | None = None,
    should_cancel: CancelCheck | None = None,
    checkpoint_path: Path | None = None,
    cache: ComponentCache | None = None,
) -> FusionResult:
    started = time.perf_counter()
    stage = on_stage or (lambda message: None)
    check_fusion_inputs(tasks, sources, data)
    splits = {"train": data.train, "validation": data.validation}
    if data.test is not None:
        splits["test"] = data.test
    scored = {split: frame for split, frame in splits.items() if split != "train"}

    stage("planning fusion levels")
    plans = [plan_levels(source, settings.akf.levels) for source in sources]
    stage("computing source model outputs")
    cache = cache or ComponentCache()
    outputs = {
        split: [cache.outputs(source, plan, frame) for source, plan in zip(sources, plans, strict=True)]
        for split, frame in splits.items()
    }
    source_scores = _source_scores(tasks, sources, outputs, scored)

    layout = _layout(tasks, sources, plans)
    strategy = Strategy(settings.strategy)
    torch.manual_seed(settings.training.seed)
    fusion = AKFusion(layout, settings.akf, adaptive=strategy != Strategy.FROZEN)
    fusion.calibrate([_level_statistics(source_outputs) for source_outputs in outputs["train"]])
    model, tables, groups = _strategy_model(strategy, fusion, sources, plans, outputs, splits, settings)
    labels = {split: label_tensors(frame, tasks) for split, frame in splits.items()}

    stage("training the fusion")
    trained = fit(
        model,
        tasks,
        (tables["train"], labels["train"]),
        (tables["validation"], labels["validation"]),
        settings.training,
        parameter_groups=groups,
        on_progress=on_progress,
        should_cancel=should_cancel,
        checkpoint_path=checkpoint_path,
    )
    model.cpu()
    fused_predictions = {split: predict(model, tables[split], tasks) for split in scored}
    fused_scores = {task.name: _score(task, _of_task(fused_predictions, task), scored) for task in tasks}
    fallbacks = _no_regression(tasks, sources, fused_scores, source_scores)

    baseline_scores: dict[str, dict[str, Score]] = {task.name: {} for task in tasks}
    for kind in settings.baselines:
        stage(f"training baseline {kind}")
        baseline = train_baseline(kind, tasks, sources, splits, settings.training, should_cancel=should_cancel)
        for task in tasks:
            baseline_scores[task.name][kind] = _score(task, _of_task(baseline.predictions, task), scored)

    stage("exporting the fused model")
    finetuned = _finetuned_weights(model) if isinstance(model, AdaptiveFusion) and strategy == Strategy.FINETUNE else {}
    exported = export_fused(fusion, ExportPlan(tasks, sources, plans, strategy, fallbacks, finetuned))
    answers = {
        task.name: (
            _source_prediction(task, sources[fallbacks[task.name]], outputs["validation"][fallbacks[task.name]].output)
            if task.name in fallbacks
            else fused_predictions["validation"][task.name]
        )
        for task in tasks
    }
    export_difference = _check_export(exported, sources, data.validation, answers, EXPORT_TOLERANCE[strategy])

    task_reports = [
        _task_report(task, sources, layout.sources_of(i), source_scores, fused_scores, fallbacks, baseline_scores)
        for i, task in enumerate(tasks)
    ]
    report = FusionReport(
        strategy=strategy.value,
        tasks=task_reports,
        best_epoch=trained.best_epoch,
        epochs_run=len(trained.history),
        history=[
            {"epoch": r.epoch, "train_loss": r.train_loss, "validation": r.validation, "seconds": r.seconds}
            for r in trained.history
        ],
        training_seconds=trained.seconds,
        total_seconds=time.perf_counter() - started,
        rows_per_second=trained.rows_per_second,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_parameters=sum(p.numel() for p in fusion.parameters())
        + sum(source.decomposition.parameter_count for source in sources),
        export_max_abs_diff=export_difference,
    )
    return FusionResult(model=exported, report=report)


def _of_task(predictions: dict[str, dict[str, np.ndarray]], task: Task) -> dict[str, np.ndarray]:
    """split -> task -> predictions, narrowed to one task: split -> predictions."""
    return {split: by_task[task.name] for split, by_task in predictions.items()}


def _task_report(
    task: Task,
    sources: list[FusionSource],
    own_sources: list[int],
    source_scores: list[Score],
    fused_scores: dict[str, Score],
    fallbacks: dict[str, int],
    baseline_scores: dict[str, dict[str, Score]],
) -> TaskReport:
    own = {sources[i].name: source_scores[i] for i in own_sources}
    answered_by = sources[fallbacks[task.name]].name if task.name in fallbacks else "fused"
    return TaskReport(
        task=task.name,
        metric=task.metric_name,
        sources=own,
        fused=fused_scores[task.name],
        exported=own[answered_by] if task.name in fallbacks else fused_scores[task.name],
        answered_by=answered_by,
        baselines=baseline_scores[task.name],
    )


def _layout(tasks: list[Task], sources: list[FusionSource], plans: list[LevelPlan]) -> FusionLayout:
    task_index = {task.name: i for i, task in enumerate(tasks)}
    return FusionLayout(
        tasks=tuple(tasks),
        sources=tuple(
            SourceSlot(
                name=source.name,
                task_index=task_index[source.task],
                level_widths=plan.widths,
                output_is_probability=source.signature.output_is_probability,
            )
            for source, plan in zip(sources, plans, strict=True)
        ),
    )


def _strategy_model(
    strategy: Strategy,
    fusion: AKFusion,
    sources: list[FusionSource],
    plans: list[LevelPlan],
    outputs: dict[str, list[SourceOutputs]],
    splits: dict[str, pd.DataFrame],
    settings: FusionSettings,
) -> tuple[FrozenFusion | AdaptiveFusion, dict[str, TensorTable], list[ParameterGroup] | None]:
    if strategy == Strategy.FROZEN:
        return FrozenFusion(fusion), {split: frozen_table(outputs[split]) for split in splits}, None
    model = AdaptiveFusion(fusion, sources, plans)
    tables = {split: _raw_inputs(sources, frame) for split, frame in splits.items()}
    if strategy == Strategy.ADAPTIVE:
        return model, tables, None
    model.set_sources_trainable(True)
    source_parameters = [p for stages in model.sources for p in stages.parameters() if p.requires_grad]
    groups: list[ParameterGroup] = [
        {"params": list(fusion.parameters())},
        {
            "params": source_parameters,
            "lr": settings.training.learning_rate * settings.finetune_learning_rate_scale,
        },
    ]
    return model, tables, groups


def _level_statistics(outputs: SourceOutputs) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and std of each level's component output, from a fixed sample of rows: they only set the
    projections' initial scale, and a sample estimates them as well as every row would."""
    rows = np.random.default_rng(0).permutation(len(outputs.output))[:STATISTICS_ROWS]
    return [
        (torch.from_numpy(sample.mean(axis=0)), torch.from_numpy(sample.std(axis=0)))
        for sample in (values[np.sort(rows)] for values in outputs.levels)
    ]


def _raw_inputs(sources: list[FusionSource], frame: pd.DataFrame) -> TensorTable:
    table: TensorTable = {}
    for source in sources:
        for name, values in source.feed(frame).items():
            table.setdefault(name, torch.from_numpy(values))
    return table


def _finetuned_weights(model: AdaptiveFusion) -> dict[int, dict[str, np.ndarray]]:
    return {i: stages.graph.initializer_arrays() for i, stages in enumerate(model.source_stages)}


def _source_prediction(task: Task, source: FusionSource, output: np.ndarray) -> np.ndarray:
    """A source model's raw output as the task's prediction (probabilities for classification)."""
    if source.signature.output_is_probability or task.type == TaskType.REGRESSION:
        return output
    if task.type == TaskType.BINARY:
        return 1.0 / (1.0 + np.exp(-output))
    shifted = np.exp(output - output.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _score(task: Task, predictions: dict[str, np.ndarray], splits: dict[str, pd.DataFrame]) -> Score:
    metrics = {
        split: task_metric(task, predictions[split], frame[task.label].to_numpy(dtype=np.float64))
        for split, frame in splits.items()
    }
    return Score(validation=metrics["validation"], test=metrics.get("test"))


def _source_scores(
    tasks: list[Task],
    sources: list[FusionSource],
    outputs: dict[str, list[SourceOutputs]],
    splits: dict[str, pd.DataFrame],
) -> list[Score]:
    by_name = {task.name: task for task in tasks}
    scores = []
    for i, source in enumerate(sources):
        task = by_name[source.task]
        predictions = {split: _source_prediction(task, source, outputs[split][i].output) for split in splits}
        scores.append(_score(task, predictions, splits))
    return scores


def _no_regression(
    tasks: list[Task], sources: list[FusionSource], fused: dict[str, Score], source_scores: list[Score]
) -> dict[str, int]:
    """Tasks whose fused head is worse on validation than their best source model -> that source's index."""
    fallbacks = {}
    for task in tasks:
        own = [i for i, source in enumerate(sources) if source.task == task.name]
        best = max(own, key=lambda i: source_scores[i].validation)
        if fused[task.name].validation < source_scores[best].validation:
            fallbacks[task.name] = best
    return fallbacks


def _check_export(
    model: onnx.ModelProto,
    sources: list[FusionSource],
    frame: pd.DataFrame,
    expected: dict[str, np.ndarray],
    tolerance: float,
) -> float:
    """The exported graph, run by ONNX Runtime, must answer what the trained model answers; returns the
    largest difference found."""
    feed = {}
    for source in sources:
        feed.update(source.feed(frame))
    session = create_session(model)
    wanted = {value.name for value in session.get_inputs()}
    results = run_session(session, {name: values for name, values in feed.items() if name in wanted})
    largest = 0.0
    for task, values in expected.items():
        difference = float(np.max(np.abs(results[task] - values))) if len(values) else 0.0
        if not difference <= tolerance:
            raise RuntimeError(
                f"exported model disagrees with the trained one on task '{task}' (max abs diff {difference:.2e})"
            )
        largest = max(largest, difference)
    return largest
