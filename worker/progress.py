"""What a running job reports: progress, stage, per-epoch metrics, the checkpoint it resumed from; and
whether to stop.

Training reports every step, far too often to write each one: writes are throttled to one per
`interval_s`, except at epoch ends, which always carry that epoch's validation metrics. Every write is
fenced by the attempt number (service/jobs/lifecycle.py), so a worker that lost its job changes nothing.
Stopping (a cancel request, or the job taken over by another worker) is checked at every training step
and at every stage change.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable

from fusion.training import Cancelled, Progress
from service.jobs import lifecycle


class JobReporter:
    """`stop_requested`: whether the worker holding the job's lease (worker/lease.py) asks it to stop."""

    def __init__(self, job_id: uuid.UUID, attempt: int, stop_requested: Callable[[], bool], interval_s: float) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.stop_requested = stop_requested
        self.interval_s = interval_s
        self._last_write = -math.inf
        # A resumed job keeps the epochs its earlier attempt finished; epochs it runs again are replaced.
        self._metrics = {entry["epoch"]: entry for entry in lifecycle.recorded_metrics(job_id)}

    def progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.validation is None and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        pace = lifecycle.TrainingPace(
            progress.fraction_done, progress.epoch, progress.rows_per_second or None, progress.eta_seconds
        )
        if progress.validation is None:
            lifecycle.record_progress(self.job_id, self.attempt, pace)
            return
        self._metrics[progress.epoch] = {
            "epoch": progress.epoch,
            "train_loss": _finite(progress.train_loss),
            "validation": {task: _finite(value) for task, value in progress.validation.items()},
        }
        metrics = [self._metrics[epoch] for epoch in sorted(self._metrics)]
        lifecycle.record_progress(self.job_id, self.attempt, pace, metrics)

    def stage(self, message: str) -> None:
        """The engine moves to its next stage: a point to stop at, outside the training loop too."""
        if self.should_stop():
            raise Cancelled(f"stopped before: {message}")
        lifecycle.record_stage(self.job_id, self.attempt, message)

    def resumed_from(self, epoch: int) -> None:
        lifecycle.record_resumption(self.job_id, self.attempt, epoch)

    def should_stop(self) -> bool:
        return self.stop_requested()


def _finite(value: float) -> float | None:
    """JSON has no NaN (PostgreSQL refuses it): a metric that could not be computed is null."""
    return value if math.isfinite(value) else None
