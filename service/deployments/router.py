"""/v1/deployments: the fused models being served, by name and version, and each one's batching."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask

from service.core.dependencies import AppSettings, DbSession, Store
from service.core.schemas import Page, page_params
from service.deployments import batching, export, service
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


@router.get(
    "/{name}/versions/{version}/triton",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}},
    summary="The deployment as a Triton model repository (tar.gz)",
)
def triton_repository(
    name: str, version: str, tenant_id: TenantId, session: DbSession, store: Store, settings: AppSettings
) -> FileResponse:
    """`<name>/config.pbtxt` (platform onnxruntime_onnx; inputs, outputs and dims from the ONNX graph;
    max_batch_size and dynamic batching from the deployment's batching) and `<name>/<version>/model.onnx`.
    Unpack it and start Triton with `--model-repository` on the folder."""
    deployment = service.find_deployment(session, tenant_id, name, version)
    path = export.write_triton_repository(deployment, store, settings)
    filename = f"{deployment.name}-v{deployment.version}-triton.tar.gz"
    return FileResponse(path, media_type="application/gzip", filename=filename, background=BackgroundTask(path.unlink))


@router.get(
    "/{name}/versions/{version}/kserve",
    response_class=Response,  # not PlainTextResponse: its text/plain would be documented for the JSON errors too
    responses={200: {"content": {"application/yaml": {}}}},
    summary="A KServe InferenceService manifest for the deployment (YAML)",
)
def kserve_manifest(
    name: str,
    version: str,
    tenant_id: TenantId,
    session: DbSession,
    storage_uri: Annotated[
        str | None,
        Query(
            max_length=2048,
            pattern=r"^[^\s\"'\\]+$",
            description="Where the unpacked Triton repository lies (no spaces or quotes); default: a placeholder.",
        ),
    ] = None,
) -> PlainTextResponse:
    """modelFormat onnx, protocolVersion v2, storageUri pointing at the unpacked `.../triton` archive."""
    deployment = service.find_deployment(session, tenant_id, name, version)
    return PlainTextResponse(export.kserve_manifest(deployment, storage_uri), media_type="application/yaml")
