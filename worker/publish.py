"""The end of a successful job: the fused ONNX into the artifact store, registered, deployed, reported."""

from __future__ import annotations

import uuid

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError

from fusion.akf.pipeline import FusionResult
from fusion.training import Cancelled
from service.core.database import session_scope, utcnow
from service.core.storage import ArtifactStore, StoredFile
from service.deployments.models import FusedModel
from service.deployments.service import deploy, register_fused_model
from service.jobs.models import FusionJob, JobStatus
from service.jobs.recovery import held_by

_DEPLOY_ATTEMPTS = 5


class NotHeld(Exception):
    """The job was cancelled, or taken over by another worker, before this attempt could publish it."""


def publish(job_id: uuid.UUID, attempt: int, result: FusionResult, store: ArtifactStore) -> int:
    """Store, register and deploy in one transaction with the job's success; returns the version.

    The success is conditional on this attempt still holding the job and no cancel having been asked
    for, which makes a job register one fused model and one deployment, however often it was delivered.
    """
    stored = store.put_bytes(result.model.SerializeToString())
    for _ in range(_DEPLOY_ATTEMPTS):
        try:
            with session_scope() as session:
                succeeded = session.execute(
                    update(FusionJob)
                    .where(*held_by(job_id, attempt), ~FusionJob.cancel_requested)
                    .values(status=JobStatus.SUCCEEDED, progress=1.0, stage="deployed", finished_at=utcnow())
                ).rowcount
                if not succeeded:
                    raise NotHeld
                job = session.get_one(FusionJob, job_id)
                fused = register_fused_model(session, job.tenant_id, job.id, result.model, stored)
                deployment = deploy(session, job.tenant_id, job.name, fused)
                job.report = result.report.to_dict()
                job.deployed_version = deployment.version
                return deployment.version
        except IntegrityError:  # another job of the same name took this version number first
            continue
        except NotHeld:
            _discard(store, stored)
            raise Cancelled("cancelled before it was deployed") from None
    raise RuntimeError(f"could not deploy the fused model of job {job_id}: version numbers kept colliding")


def _discard(store: ArtifactStore, stored: StoredFile) -> None:
    """The exported file, unless it was there before or another fused model has the same bytes."""
    if not stored.created:
        return
    with session_scope() as session:
        if not session.scalar(select(exists().where(FusedModel.sha256 == stored.sha256))):
            store.delete(stored.sha256)
