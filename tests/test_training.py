"""The training loop on a tiny model: progress with a rate and an ETA, and a job stopped inside an
epoch resumes from its mid-epoch checkpoint, replaying the stream and skipping the batches done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fusion.data.stream import tensor_source
from fusion.data.tensor_tables import TensorTable
from fusion.tasks import Task, TaskType
from fusion.training import Cancelled, Progress, TrainConfig, checkpoint_epoch, fit

TASK = Task("y", TaskType.BINARY, "y")
CONFIG = TrainConfig(batch_size=50, max_epochs=2, patience=5, buffer_rows=200, device="cpu", checkpoint_every_s=0.0)


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.calls = 0

    def forward(self, table: TensorTable) -> dict[str, torch.Tensor]:
        self.calls += self.training
        return {"y": self.layer(table["x"]).squeeze(-1)}


def data(rows: int, seed: int) -> tuple[TensorTable, TensorTable]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=rows) > 0).astype(np.float32)
    return {"x": torch.from_numpy(x)}, {"y": torch.from_numpy(y)}


def model() -> Linear:
    torch.manual_seed(0)
    return Linear()


def test_progress_reports_rows_per_second_and_an_eta() -> None:
    seen: list[Progress] = []
    fit(model(), [TASK], tensor_source(*data(1000, 0), chunk_rows=130), data(300, 1), CONFIG, on_progress=seen.append)
    assert len([p for p in seen if p.validation is None]) == 2 * 20, "20 batches an epoch, 2 epochs"
    assert all(p.rows_per_second > 0 and p.eta_seconds is not None for p in seen)
    # The time left is the rows left (of every epoch) at the rate so far: after step k, 2000 - 50 k rows.
    steps = [p for p in seen if p.validation is None]
    for done, step in enumerate(steps, start=1):
        assert step.eta_seconds is not None
        assert step.eta_seconds * step.rows_per_second == pytest.approx(2000 - 50 * done)
    assert seen[-1].eta_seconds == 0.0


def test_a_job_stopped_inside_an_epoch_resumes_there(tmp_path: Path) -> None:
    train, validation = tensor_source(*data(1000, 0), chunk_rows=130), data(300, 1)
    uninterrupted = model()
    expected = fit(uninterrupted, [TASK], train, validation, CONFIG)

    checkpoint = tmp_path / "fit.ckpt"
    seen: list[Progress] = []
    stopped = model()
    with pytest.raises(Cancelled):
        fit(stopped, [TASK], train, validation, CONFIG, on_progress=seen.append, checkpoint_path=checkpoint,
            should_cancel=lambda: len(seen) == 27)  # fmt: skip
    assert checkpoint_epoch(checkpoint) == 1, "epoch 1 done; epoch 2 was under way"

    resumed_progress: list[Progress] = []
    resumed = model()
    result = fit(resumed, [TASK], train, validation, CONFIG, on_progress=resumed_progress.append,
                 checkpoint_path=checkpoint)  # fmt: skip
    assert (resumed_progress[0].epoch, resumed_progress[0].step) == (2, 7), "continues after the 6 batches done"
    assert resumed.calls == 20 - 6, "batches already trained are skipped without running the model"
    assert [r.epoch for r in result.history] == [1, 2]
    assert result.history[-1].train_loss == pytest.approx(expected.history[-1].train_loss, rel=1e-6)
    for name, value in uninterrupted.state_dict().items():
        assert torch.allclose(resumed.state_dict()[name], value), name
