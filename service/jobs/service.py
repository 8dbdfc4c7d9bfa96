"""Fusion job business logic: create (validate, record, queue), list, fetch, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.core.database import utcnow
from service.core.errors import Conflict, NotFound, Unprocessable
from service.core.schemas import Page
from service.core.storage import ArtifactStore
from service.inference.models import FusedModel
from service.jobs.models import FusionJob, JobStatus
from service.jobs.queue import enqueue_fusion
from service.jobs.schemas import JobCreate
from service.jobs.validation import resolve_and_check


def create_job(session: Session, tenant_id: str, spec: JobCreate) -> FusionJob:
    resolved = resolve_and_check(session, tenant_id, spec)
    if resolved.problems:
        count = len(resolved.problems)
        raise Unprocessable(f"the job spec has {count} problem{'s' if count > 1 else ''}", resolved.problems)
    job = FusionJob(
        tenant_id=tenant_id,
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        dataset_id=spec.dataset_id,
        validation_dataset_id=spec.validation_dataset_id,
        test_dataset_id=spec.test_dataset_id,
        max_epochs=spec.hyperparameters.max_epochs,
        metrics=[],
        sources=list(resolved.models.values()),
    )
    session.add(job)
    session.commit()
    try:
        enqueue_fusion(job.id)
    except BaseException:
        # Without a queued message the job would wait forever: better no job and a 503.
        session.delete(job)
        session.commit()
        raise
    return job


def list_jobs(session: Session, tenant_id: str, page: Page, status: JobStatus | None = None) -> Sequence[FusionJob]:
    query = select(FusionJob).where(FusionJob.tenant_id == tenant_id)
    if status is not None:
        query = query.where(FusionJob.status == status)
    query = query.order_by(FusionJob.created_at.desc()).limit(page.limit).offset(page.offset)
    return session.scalars(query).all()


def get_job(session: Session, tenant_id: str, job_id: uuid.UUID) -> FusionJob:
    job = session.get(FusionJob, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"fusion job {job_id} not found")
    return job


def fused_model_file(session: Session, store: ArtifactStore, tenant_id: str, job_id: uuid.UUID) -> tuple[Path, str]:
    """Where the job's exported ONNX file is, and a file name to download it under."""
    job = get_job(session, tenant_id, job_id)
    fused = session.scalars(select(FusedModel).where(FusedModel.job_id == job.id)).first()
    if fused is None:
        raise Conflict(f"fusion job {job_id} is {job.status.value}; its model exists once it has succeeded")
    return store.path(fused.sha256), f"{job.name}-v{job.deployed_version}.onnx"


def cancel_job(session: Session, tenant_id: str, job_id: uuid.UUID) -> FusionJob:
    """A queued job is cancelled at once; a running one is flagged, and its worker stops at the next step.

    Conditional updates, so that a worker claiming the job at the same moment cannot be overwritten.
    """
    job = get_job(session, tenant_id, job_id)
    session.execute(
        update(FusionJob)
        .where(FusionJob.id == job.id, FusionJob.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, cancel_requested=True, finished_at=utcnow(), stage="cancelled")
    )
    session.execute(
        update(FusionJob)
        .where(FusionJob.id == job.id, FusionJob.status == JobStatus.RUNNING)
        .values(cancel_requested=True)
    )
    session.commit()
    session.refresh(job)
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Conflict(f"fusion job {job_id} has {job.status.value} already; there is nothing to cancel")
    return job
