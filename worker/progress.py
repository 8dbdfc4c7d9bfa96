"""What a running job tells the database: progress, stage, per-epoch metrics, the checkpoint it resumed
from; and whether to stop.

Training reports every step, far too often to write each one: writes are throttled to one per
`interval_s`, except at epoch ends, which always carry that epoch's validation metrics. Every write is
fenced by the attempt number, so a worker that lost its job changes nothing. Stopping (a cancel request,
or the job taken over by another worker) is checked at every training step and at every stage change.
"""

from __future__ import annotations

import math
import time
import uuid

from sqlalchemy import select, update

from fusion.training import Cancelled, Progress
from service.core.database import session_scope
from service.jobs.models import FusionJob
from service.jobs.recovery import held_by
from worker.lease import JobLease


class JobReporter:
    def __init__(self, lease: JobLease, interval_s: float) -> None:
        self.lease = lease
        self.interval_s = interval_s
        self._last_write = -math.inf
        with session_scope() as session:
            existing = session.scalar(select(FusionJob.metrics).where(FusionJob.id == lease.job_id)) or []
        # A resumed job keeps the epochs its earlier attempt finished; epochs it runs again are replaced.
        self._metrics = {entry["epoch"]: entry for entry in existing}

    @property
    def job_id(self) -> uuid.UUID:
        return self.lease.job_id

    def progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.validation is None and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        values: dict[str, object] = {"progress": progress.fraction_done, "epoch": progress.epoch}
        if progress.validation is not None:
            self._metrics[progress.epoch] = {
                "epoch": progress.epoch,
                "train_loss": _finite(progress.train_loss),
                "validation": {task: _finite(value) for task, value in progress.validation.items()},
            }
            values["metrics"] = [self._metrics[epoch] for epoch in sorted(self._metrics)]
        self._write(values)

    def stage(self, message: str) -> None:
        """The engine moves to its next stage: a point to stop at, outside the training loop too."""
        if self.should_stop():
            raise Cancelled(f"stopped before: {message}")
        self._write({"stage": message[:255]})

    def resumed_from(self, epoch: int) -> None:
        self._write({"resumed_from_epoch": epoch, "stage": f"resuming from the checkpoint of epoch {epoch}"})

    def should_stop(self) -> bool:
        return self.lease.should_stop

    def _write(self, values: dict[str, object]) -> None:
        with session_scope() as session:
            session.execute(update(FusionJob).where(*held_by(self.job_id, self.lease.attempt)).values(**values))


def _finite(value: float) -> float | None:
    """JSON has no NaN (PostgreSQL refuses it): a metric that could not be computed is null."""
    return value if math.isfinite(value) else None
