"""Reading deployments (service.inference.models.Deployment); deploying is the worker's business."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.schemas import Page
from service.inference.models import Deployment


def list_deployments(
    session: Session, tenant_id: str, page: Page, name: str | None = None
) -> list[tuple[Deployment, bool]]:
    """Deployments newest first, each with whether it is the newest version of its name."""
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
    return [(deployment, newest.get(deployment.name) == deployment.version) for deployment in deployments]
