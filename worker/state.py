"""Job state transitions the worker makes: claim a delivered job, end it."""

from __future__ import annotations

import uuid

from service.core.database import session_scope, utcnow
from service.jobs.models import ACTIVE_STATUSES, FusionJob, JobStatus


def claim(job_id: uuid.UUID) -> bool:
    """Mark the job running and count the attempt; False when there is nothing to run.

    A job found 'running' was delivered again after its worker was lost: it runs again and resumes
    from its last epoch checkpoint. A job cancelled while it waited in the queue is skipped.
    """
    with session_scope() as session:
        job = session.get(FusionJob, job_id, with_for_update=True)
        if job is None or job.status not in ACTIVE_STATUSES:
            return False
        if job.cancel_requested:
            _end(job, JobStatus.CANCELLED)
            return False
        job.status = JobStatus.RUNNING
        job.attempts += 1
        job.started_at = job.started_at or utcnow()
        job.heartbeat_at = utcnow()
        job.stage = "loading models and data"
        return True


def finish(job_id: uuid.UUID, status: JobStatus, error: str | None = None) -> None:
    with session_scope() as session:
        job = session.get_one(FusionJob, job_id)
        _end(job, status, error)


def _end(job: FusionJob, status: JobStatus, error: str | None = None) -> None:
    job.status = status
    job.error = error
    job.stage = status.value
    job.finished_at = utcnow()
