"""The one training loop of the engine, shared by source models, baselines and fusion.

A model here maps a table of input tensors to a dict of raw task outputs (logits or values).
Data comes as chunks (fusion/data/stream.py), so the loop holds one shuffle buffer, never a whole table;
in-memory tensor tables are cut into chunks and go through the same path. The loop does mini-batch
Adam, evaluates every epoch on validation rows, stops early on the mean validation metric, restores the
best epoch, and can report progress, be cancelled, and resume from a checkpoint, even mid-epoch.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

import numpy as np
import torch
from torch import nn

from fusion.data.stream import ChunkSource, sequential_batches, shuffled_batches, tensor_source
from fusion.data.tensor_tables import TensorTable, num_rows, to_device
from fusion.losses import task_loss, to_prediction
from fusion.metrics import task_metric
from fusion.spec import DEFAULT_HYPERPARAMETERS, Hyperparameters
from fusion.tasks import Task


class MultiTaskModel(Protocol):
    def __call__(self, inputs: TensorTable) -> dict[str, torch.Tensor]: ...


TrainData = ChunkSource | tuple[TensorTable, TensorTable]
"""Rows to train or score on: chunks to stream, or in-memory (features, labels) tables."""


def as_source(data: TrainData) -> ChunkSource:
    return data if isinstance(data, ChunkSource) else tensor_source(*data)


@dataclass(frozen=True)
class TrainConfig:
    """The loop's settings; the job's Hyperparameters (fusion/spec.py) hold the defaults."""

    learning_rate: float = DEFAULT_HYPERPARAMETERS.learning_rate
    batch_size: int = DEFAULT_HYPERPARAMETERS.batch_size
    max_epochs: int = DEFAULT_HYPERPARAMETERS.max_epochs
    patience: int = DEFAULT_HYPERPARAMETERS.patience
    min_improvement: float = 1e-4
    """A mean validation metric must beat the best so far by this much to reset `patience`: waiting for AUC
    moves of 1e-5 only lengthens training. The weights kept are still those of the best epoch, however
    small its lead."""
    weight_decay: float = 0.0
    seed: int = DEFAULT_HYPERPARAMETERS.seed
    device: str | None = None
    """'cpu', 'cuda', ... ; None picks CUDA when it is available."""
    buffer_rows: int = 131_072
    """Rows shuffled together: the loop's memory for training data, whatever the table's size."""
    checkpoint_every_s: float = 60.0
    """Besides epoch ends, a checkpoint this often inside an epoch, so a resumed job loses at most this."""

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Hyperparameters, device: str | None = None) -> TrainConfig:
        return cls(
            learning_rate=hyperparameters.learning_rate,
            batch_size=hyperparameters.batch_size,
            max_epochs=hyperparameters.max_epochs,
            patience=hyperparameters.patience,
            seed=hyperparameters.seed,
            device=device,
        )


@dataclass(frozen=True)
class Progress:
    """Where training stands. `validation` is set once per epoch, after the epoch's last step."""

    epoch: int
    step: int
    steps_per_epoch: int
    max_epochs: int
    train_loss: float
    validation: dict[str, float] | None = None
    rows_per_second: float = 0.0
    eta_seconds: float | None = None
    """Rows still to train (all epochs up to max_epochs) at the rate so far: early stopping can only
    shorten it; None before any rate is known."""

    @property
    def fraction_done(self) -> float:
        return min(
            1.0,
            ((self.epoch - 1) * self.steps_per_epoch + self.step) / (self.max_epochs * self.steps_per_epoch),
        )


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    validation: dict[str, float]
    mean_validation: float
    seconds: float


@dataclass
class TrainResult:
    best_epoch: int
    best_mean_validation: float
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0
    rows_per_second: float = 0.0


class Cancelled(Exception):
    """Raised inside `fit` when the cancel check answers True."""


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]
ParameterGroup = dict[str, Any]
"""One of the optimiser's parameter groups: its "params" and options of its own, such as "lr"."""


class FitOptions(TypedDict, total=False):
    """`fit`'s optional keyword arguments, for callers that pass them through."""

    parameter_groups: list[ParameterGroup] | None
    on_progress: ProgressCallback | None
    should_cancel: CancelCheck | None
    checkpoint_path: Path | None


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.no_grad()
def score(
    model: nn.Module, data: TrainData, tasks: list[Task], batch_size: int = 8192
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(predictions, labels) of every row, in order: predictions are probabilities for classification.
    Only these few values a row are kept, so scoring a large table costs bytes, not the table, per row."""
    was_training = model.training
    model.eval()
    device = next(iter(p.device for p in model.parameters()), torch.device("cpu"))
    predictions: dict[str, list[torch.Tensor]] = {task.name: [] for task in tasks}
    labels: dict[str, list[torch.Tensor]] = {}
    for features, batch_labels in sequential_batches(as_source(data), batch_size):
        outputs = model(to_device(features, device))
        for task in tasks:
            predictions[task.name].append(to_prediction(task, outputs[task.name]).float().cpu())
        for name, values in batch_labels.items():
            labels.setdefault(name, []).append(values)
    model.train(was_training)
    return (
        {name: torch.cat(parts).numpy() for name, parts in predictions.items()},
        {name: torch.cat(parts).numpy() for name, parts in labels.items()},
    )


def predict(model: nn.Module, data: TrainData | TensorTable, tasks: list[Task]) -> dict[str, np.ndarray]:
    """Predictions for every row; `data` may be bare features."""
    return score(model, data if isinstance(data, ChunkSource | tuple) else (data, {}), tasks)[0]


def evaluate(model: nn.Module, data: TrainData, tasks: list[Task]) -> dict[str, float]:
    predictions, labels = score(model, data, tasks)
    return {task.name: task_metric(task, predictions[task.name], labels[task.name]) for task in tasks}


def mean_metric(metrics: Mapping[str, float]) -> float:
    values = [value for value in metrics.values() if not math.isnan(value)]
    return float(np.mean(values)) if values else float("nan")


def fit(
    model: nn.Module,
    tasks: list[Task],
    train: TrainData,
    validation: TrainData,
    config: TrainConfig,
    *,
    parameter_groups: list[ParameterGroup] | None = None,
    on_progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    checkpoint_path: Path | None = None,
) -> TrainResult:
    """Train `model` in place and leave it holding its best epoch's weights.

    `train` is shuffled per epoch in a buffer of `config.buffer_rows` rows, in an order fixed by
    (seed, epoch); `validation` is read in order. `parameter_groups` lets a caller give parts of the
    model their own learning rate; by default every trainable parameter shares `config.learning_rate`.
    With `checkpoint_path`, the state is written there after each epoch and every
    `config.checkpoint_every_s` inside one, and a later call resumes from it: inside an epoch, the same
    batches are replayed and the ones already trained are skipped without running the model.
    """
    set_seed(config.seed)
    device = pick_device(config.device)
    model.to(device)
    train_source, validation_source = as_source(train), as_source(validation)
    groups = parameter_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
    # One fused kernel for all parameters: with many small tensors the per-parameter loop dominated a step.
    optimizer = torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
    steps_per_epoch = math.ceil(train_source.rows / config.batch_size)

    state = _LoopState(best_weights=copy.deepcopy(model.state_dict()))
    if checkpoint_path is not None and checkpoint_path.exists():
        state = _resume(checkpoint_path, model, optimizer)

    started = time.perf_counter()
    last_checkpoint = time.monotonic()
    rows_trained = 0
    for epoch in range(state.epoch + 1, config.max_epochs + 1):
        if state.epochs_without_improvement >= config.patience:
            break
        epoch_started = time.perf_counter()
        model.train()
        loss_sum, skip = (state.partial.loss_sum, state.partial.steps) if state.partial else (0.0, 0)
        step = 0
        batches = shuffled_batches(train_source, config.batch_size, config.buffer_rows, config.seed, epoch)
        for step, (features, labels) in enumerate(batches, start=1):
            if step <= skip:
                continue
            if should_cancel is not None and should_cancel():
                raise Cancelled(f"cancelled during epoch {epoch}")
            features, labels = to_device(features, device), to_device(labels, device)
            outputs = model(features)
            loss = torch.stack([task_loss(task, outputs[task.name], labels[task.name]) for task in tasks]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach())
            rows_trained += num_rows(features)
            rows_done = (epoch - 1) * train_source.rows + min(step * config.batch_size, train_source.rows)
            if on_progress is not None:
                rate, eta = _pace(rows_trained, started, config.max_epochs * train_source.rows - rows_done)
                on_progress(Progress(epoch, step, steps_per_epoch, config.max_epochs, loss_sum / step, None, rate, eta))
            if checkpoint_path is not None and time.monotonic() - last_checkpoint >= config.checkpoint_every_s:
                state.partial = _PartialEpoch(steps=step, loss_sum=loss_sum)
                _save_checkpoint(checkpoint_path, state, model, optimizer)
                last_checkpoint = time.monotonic()
        state.partial = None

        metrics = evaluate(model, validation_source, tasks)
        mean_validation = mean_metric(metrics)
        state.history.append(
            EpochRecord(epoch, loss_sum / max(step, 1), metrics, mean_validation, time.perf_counter() - epoch_started)
        )
        # Any gain makes the epoch the one kept; only a gain of min_improvement keeps training going. A task
        # near its ceiling (AUC 0.995) gains 1e-5 an epoch: those epochs are better, if not worth waiting for.
        significant = mean_validation > state.best_mean_validation + config.min_improvement
        if mean_validation > state.best_mean_validation:
            state.best_mean_validation = mean_validation
            state.best_epoch = epoch
            state.best_weights = copy.deepcopy(model.state_dict())
        state.epochs_without_improvement = 0 if significant else state.epochs_without_improvement + 1
        state.epoch = epoch
        if on_progress is not None:
            rate, eta = _pace(rows_trained, started, (config.max_epochs - epoch) * train_source.rows)
            on_progress(
                Progress(epoch, step, steps_per_epoch, config.max_epochs, loss_sum / max(step, 1), metrics, rate, eta)
            )
        if checkpoint_path is not None:
            _save_checkpoint(checkpoint_path, state, model, optimizer)
            last_checkpoint = time.monotonic()

    model.load_state_dict(state.best_weights)
    seconds = time.perf_counter() - started
    return TrainResult(
        best_epoch=state.best_epoch,
        best_mean_validation=state.best_mean_validation,
        history=state.history,
        seconds=seconds,
        rows_per_second=rows_trained / seconds if seconds > 0 else 0.0,
    )


def _pace(rows_trained: int, started: float, rows_left: int) -> tuple[float, float | None]:
    """(rows per second in this call, seconds left at that rate); no ETA before any row is trained."""
    rate = rows_trained / max(time.perf_counter() - started, 1e-9)
    return rate, (rows_left / rate if rate > 0 else None)


@dataclass
class _PartialEpoch:
    """How far the epoch after `_LoopState.epoch` had got when a mid-epoch checkpoint was written."""

    steps: int
    loss_sum: float


@dataclass
class _LoopState:
    best_weights: dict[str, torch.Tensor]
    epoch: int = 0
    best_epoch: int = 0
    best_mean_validation: float = -math.inf
    epochs_without_improvement: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    partial: _PartialEpoch | None = None


def _save_checkpoint(path: Path, state: _LoopState, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Write atomically, so that a crash mid-write leaves the previous checkpoint intact."""
    payload = {
        "epoch": state.epoch,
        "best_epoch": state.best_epoch,
        "best_mean_validation": state.best_mean_validation,
        "epochs_without_improvement": state.epochs_without_improvement,
        "history": [asdict(record) for record in state.history],
        "partial": asdict(state.partial) if state.partial else None,
        "model": model.state_dict(),
        "best_model": state.best_weights,
        "optimizer": optimizer.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> _LoopState:
    # Checkpoints are written by this module only; weights_only refuses anything but tensors and plain data.
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return _LoopState(
        best_weights=payload["best_model"],
        epoch=payload["epoch"],
        best_epoch=payload["best_epoch"],
        best_mean_validation=payload["best_mean_validation"],
        epochs_without_improvement=payload["epochs_without_improvement"],
        history=[EpochRecord(**record) for record in payload["history"]],
        partial=_PartialEpoch(**payload["partial"]) if payload.get("partial") else None,
    )


def checkpoint_epoch(path: Path) -> int:
    """The last completed epoch recorded in a checkpoint, 0 when there is none."""
    if not path.exists():
        return 0
    # mmap: the weights and optimizer state stay on disk; only the epoch number is read.
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
