"""What a running job tells the database: progress, stage, per-epoch metrics; and whether to stop.

Training reports every step, far too often to write each one: writes are throttled to one per
`interval_s`, except at epoch ends, which always carry that epoch's validation metrics. The cancel
flag is read at most once a second.
"""

from __future__ import annotations

import math
import time
import uuid

from sqlalchemy import select, update

from fusion.training import Progress
from service.core.database import session_scope, utcnow
from service.jobs.models import FusionJob

CANCEL_CHECK_INTERVAL_S = 1.0


class JobReporter:
    def __init__(self, job_id: uuid.UUID, interval_s: float) -> None:
        self.job_id = job_id
        self.interval_s = interval_s
        self._last_write = -math.inf
        self._last_cancel_check = -math.inf
        self._cancelled = False
        with session_scope() as session:
            existing = session.scalar(select(FusionJob.metrics).where(FusionJob.id == job_id)) or []
        # A resumed job keeps the epochs its earlier attempt finished.
        self._metrics = {entry["epoch"]: entry for entry in existing}

    def progress(self, progress: Progress) -> None:
        now = time.monotonic()
        if progress.validation is None and now - self._last_write < self.interval_s:
            return
        self._last_write = now
        values: dict[str, object] = {
            "progress": progress.fraction_done,
            "epoch": progress.epoch,
            "heartbeat_at": utcnow(),
        }
        if progress.validation is not None:
            self._metrics[progress.epoch] = {
                "epoch": progress.epoch,
                "train_loss": _finite(progress.train_loss),
                "validation": {task: _finite(value) for task, value in progress.validation.items()},
            }
            values["metrics"] = [self._metrics[epoch] for epoch in sorted(self._metrics)]
        self._write(values)

    def stage(self, message: str) -> None:
        self._write({"stage": message[:255], "heartbeat_at": utcnow()})

    def cancel_requested(self) -> bool:
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_CHECK_INTERVAL_S:
            self._last_cancel_check = now
            with session_scope() as session:
                flag = session.scalar(select(FusionJob.cancel_requested).where(FusionJob.id == self.job_id))
            self._cancelled = bool(flag)
        return self._cancelled

    def _write(self, values: dict[str, object]) -> None:
        with session_scope() as session:
            session.execute(update(FusionJob).where(FusionJob.id == self.job_id).values(**values))


def _finite(value: float) -> float | None:
    """JSON has no NaN (PostgreSQL refuses it): a metric that could not be computed is null."""
    return value if math.isfinite(value) else None
