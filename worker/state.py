"""Job state transitions the worker makes: claim a delivered job, end it.

Claiming counts an attempt, and the attempt number is the worker's lease on the job: every later write
matches the job only while it is still running under that attempt (`held_by`, service/jobs/recovery.py).
If this worker stalls past the heartbeat timeout, the job is requeued and claimed again under the next
number, and whatever the stalled worker still writes changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import func, or_, update

from service.core.database import session_scope, utcnow
from service.jobs.models import FusionJob, JobStatus
from service.jobs.recovery import held_by, lost_before


def claim(job_id: uuid.UUID, heartbeat_timeout_s: float) -> int | None:
    """Mark the job running and count the attempt; returns the attempt number, None when there is nothing to run.

    A queued job is taken (it resumes from its checkpoint if an earlier attempt left one). So is a running
    job whose worker sent no heartbeat for the timeout: a message redelivered after its worker was lost.
    A job running elsewhere, finished, or flagged for cancelling is left alone.
    """
    now = utcnow()
    lost = lost_before(now - timedelta(seconds=heartbeat_timeout_s))
    with session_scope() as session:
        return session.execute(
            update(FusionJob)
            .where(FusionJob.id == job_id, ~FusionJob.cancel_requested, or_(FusionJob.status == JobStatus.QUEUED, lost))
            .values(
                status=JobStatus.RUNNING,
                attempts=FusionJob.attempts + 1,
                started_at=func.coalesce(FusionJob.started_at, now),
                heartbeat_at=now,
                stage="loading models and data",
            )
            .returning(FusionJob.attempts)
        ).scalar()


def finish(job_id: uuid.UUID, attempt: int, status: JobStatus, error: str | None = None) -> bool:
    """End the job; False when this attempt no longer holds it (another worker took it over)."""
    with session_scope() as session:
        ended = session.execute(
            update(FusionJob)
            .where(*held_by(job_id, attempt))
            .values(status=status, error=error, stage=status.value, finished_at=utcnow())
        ).rowcount
    return bool(ended)
