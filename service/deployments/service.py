"""Deployments (service.inference.models.Deployment): listing them, and each one's dynamic batching.
Deploying is the worker's business."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.config import Settings
from service.core.schemas import Page
from service.deployments.schemas import BatchingChange, DeployedTask, DeploymentBatching, DeploymentOut
from service.inference.deployments import find_deployment
from service.inference.models import Deployment
from service.inference.runtime import RuntimeCache
from service.inference.served import get_served_cache
from service.inference.service import effective_batching


def list_deployments(session: Session, tenant_id: str, page: Page, name: str | None = None) -> list[DeploymentOut]:
    """Deployments newest first, each saying whether it is the newest version of its name."""
    query = select(Deployment).where(Deployment.tenant_id == tenant_id)
    if name is not None:
        query = query.where(Deployment.name == name)
    query = query.order_by(Deployment.created_at.desc(), Deployment.version.desc()).limit(page.limit)
    deployments = session.scalars(query.offset(page.offset)).all()
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


def batching(
    session: Session, runtimes: RuntimeCache, settings: Settings, tenant_id: str, name: str, version: str
) -> DeploymentBatching:
    return _batching(find_deployment(session, tenant_id, name, version), runtimes, settings)


def change_batching(
    session: Session,
    runtimes: RuntimeCache,
    settings: Settings,
    tenant_id: str,
    name: str,
    version: str,
    change: BatchingChange,
) -> DeploymentBatching:
    deployment = find_deployment(session, tenant_id, name, version)
    # Fields the change leaves out keep their value; a field sent as null returns to the service's setting.
    for key, value in change.model_dump(exclude_unset=True).items():
        setattr(deployment, key, value)
    session.commit()
    get_served_cache().forget(tenant_id, name)
    return _batching(deployment, runtimes, settings)


def _batching(deployment: Deployment, runtimes: RuntimeCache, settings: Settings) -> DeploymentBatching:
    rows, wait_ms = effective_batching(deployment, settings)
    model = runtimes.peek(deployment.fused_model.sha256)
    batchers = list(model.batchers.values()) if model is not None else []
    return DeploymentBatching(
        name=deployment.name,
        version=deployment.version,
        max_batch_size=deployment.max_batch_size,
        max_batch_wait_ms=deployment.max_batch_wait_ms,
        effective_max_batch_size=rows,
        effective_max_batch_wait_ms=wait_ms,
        requests=sum(batcher.stats.requests for batcher in batchers),
        runs=sum(batcher.stats.runs for batcher in batchers),
    )
