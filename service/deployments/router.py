"""/v1/deployments: the fused models being served, by name and version (read-only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.core.dependencies import DbSession
from service.core.schemas import Page, page_params
from service.core.tenancy import TenantId
from service.deployments import service
from service.deployments.schemas import DeploymentList, DeploymentOut

router = APIRouter(prefix="/v1/deployments", tags=["inference"])


@router.get("", response_model=DeploymentList, summary="List deployments, newest first")
def list_deployments(
    tenant_id: TenantId,
    session: DbSession,
    page: Annotated[Page, Depends(page_params)],
    name: Annotated[str | None, Query(description="Only the versions of this name.")] = None,
) -> DeploymentList:
    """A succeeded fusion job deploys its model under the job's name, as the next version; the newest
    version answers the unversioned routes and `/v1/predict/{name}`."""
    rows = service.list_deployments(session, tenant_id, page, name)
    return DeploymentList(items=[DeploymentOut.model_validate(row) for row in rows])
