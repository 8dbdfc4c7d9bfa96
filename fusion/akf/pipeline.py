"""One fusion job from start to end: plan, precompute, train, apply the no-regression rule, compare
with baselines, export, verify the export, report.

Splits are chunked tables (fusion/data/tables.py): component outputs are stored as shards or computed per
batch (component_path.py), training
streams batches, and scoring keeps predictions and labels only, so memory does not grow with rows."""

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
from fusion.akf.cache import ComponentCache, component_store
from fusion.akf.component_path import ComponentChoice, ComponentPath, SplitComponents, budget_of, choose_path
from fusion.akf.components import ComponentRunner
from fusion.akf.export import ExportPlan, export_fused
from fusion.akf.model import AKFConfig, AKFusion, FusionLayout, SourceSlot
from fusion.akf.report import FusionReport, Score, TaskReport
from fusion.akf.seen_rows import seen_rows_warnings, training_sample
from fusion.akf.sources import FusionSource, LevelPlan, plan_levels, with_stage_groups
from fusion.akf.strategies import AdaptiveFusion, FrozenFusion, frozen_source, raw_source
from fusion.akf.validation import check_fusion_inputs
from fusion.data.stream import ChunkSource
from fusion.data.tables import Table, as_table, read_all, read_head
from fusion.metrics import task_metric
from fusion.onnx_runtime import create_session, run_session
from fusion.spec import DEFAULT_HYPERPARAMETERS, BaselineKind, FusionPlan, Strategy
from fusion.tasks import Task, TaskType
from fusion.training import CancelCheck, Cancelled, ParameterGroup, ProgressCallback, TrainConfig, fit, predict

EXPORT_TOLERANCE = {Strategy.FROZEN: 1e-5, Strategy.ADAPTIVE: 1e-4, Strategy.FINETUNE: 1e-4}
"""Largest difference allowed between the exported model (ONNX Runtime) and the trained one (PyTorch).
Under `frozen` both sides run the source graphs in ONNX Runtime and only the AKF graph differs; under the
adaptive strategies PyTorch runs the source graphs too, and float32 sums taken in another order along a
whole chain of layers can move confident class probabilities by a few 1e-5."""
ADAPTIVE_CHOICE = ComponentChoice(
    ComponentPath.PER_BATCH,
    np.dtype(np.float32),
    0,
    "computed per batch with ONNX Runtime, for scoring the sources only: the model runs them itself",
)
"""The adaptive strategies need stored outputs for nothing: training runs the source graphs in PyTorch."""
EXPORT_CHECK_ROWS = 20_000
"""Validation rows the exported model is checked on: enough to catch a wrong graph, bounded at any size."""


@dataclass(frozen=True)
class FusionSettings:
    strategy: Strategy = Strategy.FROZEN
    akf: AKFConfig = field(default_factory=AKFConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    finetune_learning_rate_scale: float = DEFAULT_HYPERPARAMETERS.finetune_learning_rate_scale
    """Source weights learn this much slower than the fusion network under `finetune`."""
    baselines: tuple[BaselineKind, ...] = ()
    """From-scratch multi-task models to train on the same data for comparison."""
    component_path: ComponentPath = ComponentPath.AUTO
    """`frozen`: stored or per-batch component outputs; auto picks stored when they fit the cache's budget."""

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
    """The splits, as chunked tables or as frames (which are wrapped in FrameTables)."""

    train: Table | pd.DataFrame
    validation: Table | pd.DataFrame
    test: Table | pd.DataFrame | None = None

    def tables(self) -> dict[str, Table]:
        splits = {"train": as_table(self.train), "validation": as_table(self.validation)}
        if self.test is not None:
            splits["test"] = as_table(self.test)
        return splits


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
    splits = data.tables()
    check_fusion_inputs(tasks, sources, splits)
    scored = {split: table for split, table in splits.items() if split != "train"}
    label_columns = list(dict.fromkeys(t.label for t in tasks))
    labels = {split: read_all(table, label_columns) for split, table in scored.items()}

    stage("planning fusion levels")
    sources = [with_stage_groups(source, settings.akf.levels) for source in sources]
    plans = [plan_levels(source, settings.akf.levels) for source in sources]
    runners = [ComponentRunner(source, plan) for source, plan in zip(sources, plans, strict=True)]
    with component_store(cache) as store:
        strategy = Strategy(settings.strategy)
        choice = (
            choose_path(runners, splits, budget_of(store), EXPORT_TOLERANCE[strategy], settings.component_path)
            if strategy == Strategy.FROZEN
            else ADAPTIVE_CHOICE
        )
        stage("computing source model outputs")
        components = {split: _split_components(choice, store, runners, table) for split, table in splits.items()}
        components_line = _components_line(choice, components, store is cache)
        outputs = {split: components[split].source_outputs() for split in scored}
        # The sources also on the first training rows: far better there than on validation means seen rows.
        sample_outputs, sample_labels = training_sample(components["train"], label_columns)
        source_scores = _source_scores(
            tasks, sources, {**outputs, "train": sample_outputs}, {**labels, "train": sample_labels}
        )
        seen_warnings = seen_rows_warnings(tasks, sources, source_scores, sample_labels, labels["validation"])

        layout = _layout(tasks, sources, plans)
        torch.manual_seed(settings.training.seed)
        fusion = AKFusion(layout, settings.akf, adaptive=strategy != Strategy.FROZEN)
        fusion.calibrate(components["train"].level_statistics())
        if choice.path == ComponentPath.STORED or strategy != Strategy.FROZEN:
            for runner in runners:  # training reads stored outputs, or runs the sources itself
                runner.release()
        model, batches, groups = _strategy_model(strategy, fusion, tasks, sources, plans, components, settings)

        stage("training the fusion")
        trained = fit(
            model,
            tasks,
            batches["train"],
            batches["validation"],
            settings.training,
            parameter_groups=groups,
            on_progress=on_progress,
            should_cancel=should_cancel,
            checkpoint_path=checkpoint_path,
        )
        model.cpu()
        fused_predictions = {split: predict(model, batches[split], tasks) for split in scored}
        fused_scores = {task.name: _score(task, _of_task(fused_predictions, task), labels) for task in tasks}
        fallbacks = _no_regression(tasks, sources, fused_scores, source_scores)

        baseline_scores, baseline_failures = _baselines(tasks, sources, splits, labels, settings, stage, should_cancel)

        stage("exporting the fused model")
        finetuned = (
            _finetuned_weights(model) if isinstance(model, AdaptiveFusion) and strategy == Strategy.FINETUNE else {}
        )
        exported = export_fused(fusion, ExportPlan(tasks, sources, plans, strategy, fallbacks, finetuned))
        checked = min(EXPORT_CHECK_ROWS, splits["validation"].num_rows)
        answers = {
            task.name: (
                _source_prediction(
                    task, sources[fallbacks[task.name]], outputs["validation"][fallbacks[task.name]][:checked]
                )
                if task.name in fallbacks
                else fused_predictions["validation"][task.name][:checked]
            )
            for task in tasks
        }
        columns = list(dict.fromkeys(column for source in sources for column in source.columns))
        check_frame = read_head(splits["validation"], columns, checked)
        export_difference = _check_export(exported, sources, check_frame, answers, EXPORT_TOLERANCE[strategy])

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
        component_outputs=components_line,
        baseline_failures=baseline_failures,
        seen_rows_warnings=seen_warnings,
        notes=[f"baseline {kind} failed, left out of the report: {why}" for kind, why in baseline_failures.items()],
    )
    return FusionResult(model=exported, report=report)


def _baselines(
    tasks: list[Task],
    sources: list[FusionSource],
    splits: dict[str, Table],
    labels: dict[str, pd.DataFrame],
    settings: FusionSettings,
    stage: StageCallback,
    should_cancel: CancelCheck | None,
) -> tuple[dict[str, dict[str, Score]], dict[str, str]]:
    """Each baseline's scores per task, and the baselines that failed with why. A baseline only compares:
    its failure must never cost the job the fused model it has already trained (cancelling still stops)."""
    scores: dict[str, dict[str, Score]] = {task.name: {} for task in tasks}
    failures: dict[str, str] = {}
    for kind in settings.baselines:
        stage(f"training baseline {kind}")
        try:
            baseline = train_baseline(kind, tasks, sources, splits, settings.training, should_cancel=should_cancel)
        except Cancelled:
            raise
        except Exception as error:  # any failure of the comparison model; the fusion itself succeeded
            failures[kind] = f"{type(error).__name__}: {error}"
            continue
        for task in tasks:
            scores[task.name][kind] = _score(task, _of_task(baseline.predictions, task), labels)
    return scores, failures


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
    tasks: list[Task],
    sources: list[FusionSource],
    plans: list[LevelPlan],
    components: dict[str, SplitComponents],
    settings: FusionSettings,
) -> tuple[FrozenFusion | AdaptiveFusion, dict[str, ChunkSource], list[ParameterGroup] | None]:
    """The model to train, the batches it reads per split, and its optimizer's parameter groups."""
    if strategy == Strategy.FROZEN:
        batches = {split: frozen_source(split_components, tasks) for split, split_components in components.items()}
        return FrozenFusion(fusion), batches, None
    model = AdaptiveFusion(fusion, sources, plans)
    batches = {split: raw_source(sources, c.table, tasks) for split, c in components.items()}
    if strategy == Strategy.ADAPTIVE:
        return model, batches, None
    model.set_sources_trainable(True)
    source_parameters = [p for stages in model.source_stages for p in stages.parameters() if p.requires_grad]
    groups: list[ParameterGroup] = [
        {"params": list(fusion.parameters())},
        {
            "params": source_parameters,
            "lr": settings.training.learning_rate * settings.finetune_learning_rate_scale,
        },
    ]
    return model, batches, groups


def _split_components(
    choice: ComponentChoice, store: ComponentCache, runners: list[ComponentRunner], table: Table
) -> SplitComponents:
    if choice.path == ComponentPath.PER_BATCH:
        return SplitComponents(table, runners)
    stored = [store.outputs(runner, table, choice.dtype) for runner in runners]
    return SplitComponents(table, runners, stored)


def _components_line(choice: ComponentChoice, components: dict[str, SplitComponents], in_cache: bool) -> str:
    """The report's account of the component path: which, why, and what it stored where."""
    if choice.path == ComponentPath.PER_BATCH:
        return choice.reason
    stored_mb = sum(s.nbytes for c in components.values() for s in c.stored or []) / 1e6
    where = "the component cache" if in_cache else "a temporary folder, removed after the job"
    return f"{choice.reason}; {stored_mb:,.1f} MB stored in {where}"


def _finetuned_weights(model: AdaptiveFusion) -> dict[int, dict[str, np.ndarray]]:
    return {i: stages.graph.initializer_arrays() for i, stages in model.trainable_sources.items()}


def _source_prediction(task: Task, source: FusionSource, output: np.ndarray) -> np.ndarray:
    """A source model's raw output as the task's prediction (probabilities for classification)."""
    if source.signature.output_is_probability or task.type == TaskType.REGRESSION:
        return output
    if task.type == TaskType.BINARY:
        return 1.0 / (1.0 + np.exp(-output))
    shifted = np.exp(output - output.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _score(task: Task, predictions: dict[str, np.ndarray], labels: dict[str, pd.DataFrame]) -> Score:
    metrics = {
        split: task_metric(task, predictions[split], frame[task.label].to_numpy(dtype=np.float64))
        for split, frame in labels.items()
    }
    return Score(validation=metrics["validation"], test=metrics.get("test"), train=metrics.get("train"))


def _source_scores(
    tasks: list[Task],
    sources: list[FusionSource],
    outputs: dict[str, list[np.ndarray]],
    labels: dict[str, pd.DataFrame],
) -> list[Score]:
    by_name = {task.name: task for task in tasks}
    scores = []
    for i, source in enumerate(sources):
        task = by_name[source.task]
        predictions = {split: _source_prediction(task, source, outputs[split][i]) for split in labels}
        scores.append(_score(task, predictions, labels))
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
    """The exported graph, run by ONNX Runtime, must answer what the trained model answers on the rows
    of `frame` (the first validation rows); returns the largest difference found."""
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
