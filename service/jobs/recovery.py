"""Jobs whose worker vanished: requeued to resume from their last checkpoint, or ended.

The worker running a job writes its heartbeat about once a second. A worker killed outright (SIGKILL,
the OOM killer, a lost host) stops writing, and its queue message does not come back in useful time:
the filesystem broker removed it on delivery, and Redis restores an unacknowledged message only after
its visibility timeout, longer than the longest job. So every API process and every worker sweeps the
job table on a timer. A running job whose heartbeat is older than `heartbeat_timeout_s` is:

- cancelled, when a cancel was asked for (its worker can no longer act on it);
- failed, when it has had `job_max_attempts` runs already (a job that kills its worker every time);
- otherwise put back in the queue; the worker that takes it resumes from the last epoch checkpoint.

A queued job can lose its message too: a Redis restarted without persistence forgets its queues, and an
API process can die between committing a job and sending it. So a queued job that no worker took within
`job_resend_after_s` of its last message gets its message sent again. A job sent twice runs once: the
worker's claim takes only a queued job, and the second delivery finds nothing to run.

Each change is conditional on the attempt number and the stale heartbeat the sweep read, so that of
several sweepers exactly one acts on a job, and a worker that comes back to life after its job was
requeued finds its writes fenced off (service/jobs/lifecycle.py).
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, or_, select, update

from service.core.config import Settings
from service.core.database import rows_matched, session_scope, utcnow
from service.core.storage import ArtifactStore
from service.jobs.models import FusionJob, JobStatus
from service.jobs.queue import enqueue_fusion

log = logging.getLogger(__name__)


def sweep_interval_s(settings: Settings) -> float:
    return min(30.0, settings.heartbeat_timeout_s / 4)


def recover_lost_jobs(settings: Settings, store: ArtifactStore) -> dict[uuid.UUID, JobStatus]:
    """Requeue or end every running job whose worker is gone; returns what became of each."""
    cutoff = utcnow() - timedelta(seconds=settings.heartbeat_timeout_s)
    with session_scope() as session:
        lost = session.execute(
            select(FusionJob.id, FusionJob.attempts, FusionJob.cancel_requested).where(lost_before(cutoff))
        ).all()
    outcomes = {}
    for job_id, attempts, cancel_requested in lost:
        outcome = _recover(job_id, attempts, cancel_requested, cutoff, settings)
        if outcome is None:
            continue  # another sweeper or a worker got there first
        outcomes[job_id] = outcome
        if outcome.finished:
            store.remove_job_folder(job_id)
        log.warning(
            "job %s: no heartbeat for %g s, its worker is gone; now %s", job_id, settings.heartbeat_timeout_s, outcome
        )
    return outcomes


def _recover(
    job_id: uuid.UUID, attempts: int, cancel_requested: bool, cutoff: datetime, settings: Settings
) -> JobStatus | None:
    silence = f"{settings.heartbeat_timeout_s:g} s"
    if cancel_requested:
        outcome, values = JobStatus.CANCELLED, {"stage": "cancelled", "finished_at": utcnow()}
    elif attempts >= settings.job_max_attempts:
        outcome = JobStatus.FAILED
        error = (
            f"the worker running this job stopped sending heartbeats (none for {silence}), and the job has had "
            f"{attempts} attempt(s), the most allowed (FUSEBOX_JOB_MAX_ATTEMPTS): not retried again. Workers "
            "that die on a job are often out of memory; try a smaller batch_size"
        )
        values = {"stage": "failed", "error": error, "finished_at": utcnow()}
    else:
        outcome = JobStatus.QUEUED
        values = {"stage": f"requeued after its worker was lost (no heartbeat for {silence})", "enqueued_at": utcnow()}
    with session_scope() as session:
        changed = rows_matched(
            session,
            update(FusionJob)
            .where(*held_by(job_id, attempts), stale_heartbeat(cutoff))
            .values(status=outcome, **values),
        )
        if changed and outcome == JobStatus.QUEUED:
            # Sent before the commit: if the queue is down, the rollback leaves the job for the next sweep.
            enqueue_fusion(job_id)
    return outcome if changed else None


def resend_waiting_jobs(settings: Settings) -> list[uuid.UUID]:
    """Send the message of every job queued for longer than `job_resend_after_s` again; returns their ids."""
    cutoff = utcnow() - timedelta(seconds=settings.job_resend_after_s)
    waiting = or_(FusionJob.enqueued_at.is_(None), FusionJob.enqueued_at < cutoff)
    with session_scope() as session:
        candidates = list(
            session.execute(
                select(FusionJob.id).where(FusionJob.status == JobStatus.QUEUED, ~FusionJob.cancel_requested, waiting)
            ).scalars()
        )
    resent = []
    for job_id in candidates:
        with session_scope() as session:
            claimed = rows_matched(
                session,
                update(FusionJob)
                .where(FusionJob.id == job_id, FusionJob.status == JobStatus.QUEUED, waiting)
                .values(enqueued_at=utcnow()),
            )
            if claimed:  # of several sweepers, the one whose update landed sends; before the commit, as above
                enqueue_fusion(job_id)
                resent.append(job_id)
                log.warning(
                    "job %s: queued for over %g s and no worker took it; its message is sent again",
                    job_id,
                    settings.job_resend_after_s,
                )
    return resent


def held_by(job_id: uuid.UUID, attempt: int) -> tuple[ColumnElement[bool], ...]:
    """The job, still running under this attempt: the lease that every write of its worker, and a sweep's
    takeover, is conditional on."""
    return FusionJob.id == job_id, FusionJob.status == JobStatus.RUNNING, FusionJob.attempts == attempt


def lost_before(cutoff: datetime) -> ColumnElement[bool]:
    """A running job whose worker has been silent since before `cutoff`."""
    return and_(FusionJob.status == JobStatus.RUNNING, stale_heartbeat(cutoff))


def stale_heartbeat(cutoff: datetime) -> ColumnElement[bool]:
    """The job's worker is silent since before `cutoff`: killed, or its host gone."""
    return or_(FusionJob.heartbeat_at.is_(None), FusionJob.heartbeat_at < cutoff)


class LostJobSweeper:
    """Runs `recover_lost_jobs` and `resend_waiting_jobs`, and removes the artifact store's stale staged uploads,
    at once and then every sweep interval, in a daemon thread, until stopped."""

    def __init__(self, settings: Settings, store: ArtifactStore) -> None:
        self.settings = settings
        self.store = store
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lost-job-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                # The first sweep runs as the process starts: what a killed predecessor staged goes at once.
                if removed := self.store.remove_stale_staging(self.settings.staged_upload_max_age_s):
                    log.warning("removed %d staged upload file(s) left by requests that died", len(removed))
            except OSError:
                log.exception("sweeping the staged uploads failed")
            try:
                recover_lost_jobs(self.settings, self.store)
                resend_waiting_jobs(self.settings)
            except Exception:  # the database or the queue is down for a moment: the next sweep tries again
                log.exception("sweeping for lost jobs failed")
            self._stopped.wait(sweep_interval_s(self.settings))
