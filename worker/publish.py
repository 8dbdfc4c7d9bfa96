"""The end of a successful job: the fused ONNX into the artifact store, registered, deployed, reported."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError

from fusion.akf.pipeline import FusionResult
from service.core.database import session_scope, utcnow
from service.core.storage import ArtifactStore
from service.inference.deployments import deploy, register_fused_model
from service.jobs.models import FusionJob, JobStatus

_DEPLOY_ATTEMPTS = 5


def publish(job_id: uuid.UUID, result: FusionResult, store: ArtifactStore) -> int:
    """Store, register and deploy in one transaction with the job's success; returns the version."""
    stored = store.put_bytes(result.model.SerializeToString())
    for _ in range(_DEPLOY_ATTEMPTS):
        try:
            with session_scope() as session:
                job = session.get_one(FusionJob, job_id)
                fused = register_fused_model(session, job.tenant_id, job.id, result.model, stored)
                deployment = deploy(session, job.tenant_id, job.name, fused)
                job.status = JobStatus.SUCCEEDED
                job.progress = 1.0
                job.report = result.report.to_dict()
                job.deployed_version = deployment.version
                job.stage = "deployed"
                job.finished_at = utcnow()
                return deployment.version
        except IntegrityError:  # another job of the same name took this version number first
            continue
    raise RuntimeError(f"could not deploy the fused model of job {job_id}: version numbers kept colliding")
