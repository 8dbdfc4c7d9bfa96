"""Deployments: registering a fused model and deploying it under a name as the next version (the worker's
end of a job), finding what a name and version serve, and listing them."""

from __future__ import annotations

import json
import uuid

import onnx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.errors import NotFound
from service.core.hygiene import INT32_MAX
from service.core.repository import list_owned
from service.core.schemas import Page
from service.core.storage import StoredFile
from service.deployments.models import Deployment, FusedModel
from service.deployments.schemas import DeployedTask, DeploymentOut


def register_fused_model(
    session: Session, tenant_id: str, job_id: uuid.UUID, model: onnx.ModelProto, stored: StoredFile
) -> FusedModel:
    """A row for an exported fused model, described by the metadata the engine writes into it."""
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    fused = FusedModel(
        tenant_id=tenant_id,
        job_id=job_id,
        sha256=stored.sha256,
        size_bytes=stored.size,
        strategy=metadata.get("fusebox.strategy", ""),
        tasks=json.loads(metadata["fusebox.tasks"]),
        input_columns=json.loads(metadata.get("fusebox.input_columns", "{}")),
        answered_by=json.loads(metadata.get("fusebox.answered_by", "{}")),
    )
    session.add(fused)
    session.flush()
    return fused


def deploy(session: Session, tenant_id: str, name: str, fused: FusedModel) -> Deployment:
    """Serve `fused` as the next version of `name`. Two jobs of one name finishing together pick the same
    number: the unique constraint fails the second flush, and its caller retries in a new transaction."""
    current = session.scalar(
        select(func.max(Deployment.version)).where(Deployment.tenant_id == tenant_id, Deployment.name == name)
    )
    deployment = Deployment(tenant_id=tenant_id, name=name, version=(current or 0) + 1, fused_model=fused)
    session.add(deployment)
    session.flush()
    return deployment


def find_deployment(session: Session, tenant_id: str, name: str, version: str | None = None) -> Deployment:
    query = select(Deployment).where(Deployment.tenant_id == tenant_id, Deployment.name == name)
    if version is None:
        query = query.order_by(Deployment.version.desc()).limit(1)
    else:
        # ASCII digits only ('²' is a digit to str.isdigit, not to int), and within the INTEGER column: a larger
        # number, given to the database, would be its error rather than a missing version.
        if not (version.isascii() and version.isdigit() and len(version) <= 10 and int(version) <= INT32_MAX):
            raise NotFound(f"model '{name}' has no version '{version[:30]}'; versions are 1, 2, ...")
        query = query.where(Deployment.version == int(version))
    deployment = session.scalars(query).first()
    if deployment is None:
        which = f"version {version} of model" if version is not None else "model"
        raise NotFound(f"{which} '{name}' is not deployed")
    return deployment


def list_versions(session: Session, tenant_id: str, name: str) -> list[int]:
    query = (
        select(Deployment.version)
        .where(Deployment.tenant_id == tenant_id, Deployment.name == name)
        .order_by(Deployment.version)
    )
    return list(session.scalars(query).all())


def list_deployments(session: Session, tenant_id: str, page: Page, name: str | None = None) -> list[DeploymentOut]:
    """Deployments newest first, each saying whether it is the newest version of its name."""
    conditions = [Deployment.name == name] if name is not None else []
    deployments = list_owned(session, Deployment, tenant_id, page, *conditions, then_by=[Deployment.version.desc()])
    names = {deployment.name for deployment in deployments}
    newest = dict(
        session.execute(
            select(Deployment.name, func.max(Deployment.version))
            .where(Deployment.tenant_id == tenant_id, Deployment.name.in_(names))
            .group_by(Deployment.name)
        ).all()
    )
    return [
        _deployment_out(deployment, deployment.version == newest.get(deployment.name)) for deployment in deployments
    ]


def _deployment_out(deployment: Deployment, latest: bool) -> DeploymentOut:
    fused = deployment.fused_model
    return DeploymentOut(
        name=deployment.name,
        version=deployment.version,
        latest=latest,
        job_id=fused.job_id,
        strategy=fused.strategy,
        tasks=[
            DeployedTask(
                name=task["name"],
                type=task.get("type", "binary"),
                classes=task.get("classes"),
                answered_by=fused.answered_by.get(task["name"], "fused"),
            )
            for task in fused.tasks
        ],
        input_columns=fused.input_columns,
        size_bytes=fused.size_bytes,
        infer_url=f"/v2/models/{deployment.name}/versions/{deployment.version}/infer",
        predict_url=f"/v1/predict/{deployment.name}" if latest else None,
        created_at=deployment.created_at,
    )
