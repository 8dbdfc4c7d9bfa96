"""Fusion job business logic: create (validate, record, queue; once per idempotency key), list, fetch, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.database import rows_matched, utcnow
from service.core.errors import Conflict, Unprocessable
from service.core.repository import get_owned, list_owned
from service.core.schemas import Page
from service.core.storage import ArtifactStore
from service.deployments.models import FusedModel
from service.jobs.budget import budget_problem
from service.jobs.models import FusionJob, JobStatus
from service.jobs.queue import enqueue_fusion
from service.jobs.schemas import JobCreate
from service.jobs.validation import resolve_and_check


def create_job(
    session: Session,
    tenant_id: str,
    spec: JobCreate,
    data_root: Path,
    idempotency_key: str | None = None,
    memory_budget: int | None = None,
) -> tuple[FusionJob, bool]:
    """The job, and whether this request created it: False when `idempotency_key` names a job that an
    earlier request with the same spec created (a client's retry), which is returned instead.

    `memory_budget`: a worker's bytes for one job (FUSEBOX_WORKER_MEMORY_BYTES); a job estimated to need
    more is refused here rather than left to exhaust a worker's host."""
    request = spec.model_dump(mode="json")
    if idempotency_key is not None and (earlier := _job_of_key(session, tenant_id, idempotency_key)) is not None:
        return _replay(earlier, request, idempotency_key), False
    resolved = resolve_and_check(session, tenant_id, spec, data_root)
    if resolved.problems:
        count = len(resolved.problems)
        raise Unprocessable(f"the job spec has {count} problem{'s' if count > 1 else ''}", resolved.problems)
    if memory_budget is not None and (too_big := budget_problem(spec, resolved, memory_budget)) is not None:
        raise Unprocessable("the job does not fit a worker's memory", [too_big])
    job = FusionJob(
        tenant_id=tenant_id,
        name=spec.name,
        spec=request,
        dataset_id=spec.dataset_id,
        validation_dataset_id=spec.validation_dataset_id,
        test_dataset_id=spec.test_dataset_id,
        max_epochs=spec.hyperparameters.max_epochs,
        metrics=[],
        sources=list(resolved.models.values()),
        idempotency_key=idempotency_key,
        enqueued_at=utcnow(),
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        # Two requests with one key at the same moment: the unique constraint let the first one in.
        session.rollback()
        if idempotency_key is None or (earlier := _job_of_key(session, tenant_id, idempotency_key)) is None:
            raise
        return _replay(earlier, request, idempotency_key), False
    try:
        enqueue_fusion(job.id)
    except BaseException:
        # Without a queued message the job would wait forever: better no job (and a free key) and a 503.
        session.delete(job)
        session.commit()
        raise
    return job, True


def _job_of_key(session: Session, tenant_id: str, idempotency_key: str) -> FusionJob | None:
    return session.scalars(
        select(FusionJob).where(FusionJob.tenant_id == tenant_id, FusionJob.idempotency_key == idempotency_key)
    ).first()


def _replay(earlier: FusionJob, request: dict, idempotency_key: str) -> FusionJob:
    if earlier.spec != request:
        raise Conflict(
            f"the Idempotency-Key '{idempotency_key}' was used before for a different job spec (job {earlier.id}); "
            "send a new key for a new job, or repeat the first request unchanged"
        )
    return earlier


def list_jobs(session: Session, tenant_id: str, page: Page, status: JobStatus | None = None) -> Sequence[FusionJob]:
    conditions = [FusionJob.status == status] if status is not None else []
    return list_owned(session, FusionJob, tenant_id, page, *conditions)


def get_job(session: Session, tenant_id: str, job_id: uuid.UUID) -> FusionJob:
    return get_owned(session, FusionJob, tenant_id, job_id, "fusion job")


def fused_model_file(session: Session, store: ArtifactStore, tenant_id: str, job_id: uuid.UUID) -> tuple[Path, str]:
    """Where the job's exported ONNX file is, and a file name to download it under."""
    job = get_job(session, tenant_id, job_id)
    fused = session.scalars(select(FusedModel).where(FusedModel.job_id == job.id)).first()
    if fused is None:
        raise Conflict(f"fusion job {job_id} is {job.status.value}; its model exists once it has succeeded")
    return store.path(fused.sha256), f"{job.name}-v{job.deployed_version}.onnx"


def cancel_job(session: Session, store: ArtifactStore, tenant_id: str, job_id: uuid.UUID) -> FusionJob:
    """A queued job is cancelled at once; a running one is flagged, and its worker stops it within about a
    second (killing its process if need be), ends it and removes its checkpoints (or, if that worker is
    gone, the lost-job sweep does).

    Conditional updates, so that a worker claiming the job at the same moment cannot be overwritten.
    """
    job = get_job(session, tenant_id, job_id)
    cancelled_while_queued = rows_matched(
        session,
        update(FusionJob)
        .where(FusionJob.id == job.id, FusionJob.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=utcnow(), stage="cancelled"),
    )
    session.execute(
        update(FusionJob)
        .where(FusionJob.id == job.id, FusionJob.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
    )
    session.commit()
    session.refresh(job)
    if cancelled_while_queued:
        # A job requeued after its worker was lost still holds that attempt's checkpoint.
        store.remove_job_folder(job.id)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Conflict(f"fusion job {job_id} has {job.status.value} already; there is nothing to cancel")
    return job
