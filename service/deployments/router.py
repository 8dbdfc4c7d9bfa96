"""/v1/deployments: the fused models being served, by name and version, and each one's batching."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from service.core.dependencies import AppSettings, DbSession
from service.core.schemas import Page, page_params
from service.deployments import batching, service
from service.deployments.schemas import BatchingChange, DeploymentBatching, DeploymentList
from service.tenants.dependencies import TenantId

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
    return DeploymentList(items=service.list_deployments(session, tenant_id, page, name))


@router.get(
    "/{name}/versions/{version}",
    response_model=DeploymentBatching,
    responses={404: {}},
    summary="A deployment's batching",
)
def deployment_batching(
    name: str, version: str, tenant_id: TenantId, session: DbSession, settings: AppSettings
) -> DeploymentBatching:
    return batching.batching(session, settings, tenant_id, name, version)


@router.patch(
    "/{name}/versions/{version}",
    response_model=DeploymentBatching,
    responses={404: {}},
    summary="Change a deployment's batching",
)
def change_deployment_batching(
    name: str,
    version: str,
    change: BatchingChange,
    tenant_id: TenantId,
    session: DbSession,
    settings: AppSettings,
) -> DeploymentBatching:
    """Fields left out stay as they are; null returns a field to the service's setting. Every API process
    applies the change within FUSEBOX_INFERENCE_DEPLOYMENT_CACHE_S."""
    return batching.change_batching(session, settings, tenant_id, name, version, change)
