"""Inference routes: Open Inference Protocol v2 under /v2, and /v1/predict for records in, predictions out.

Routes are plain functions, so FastAPI runs them in its thread pool: ONNX Runtime releases the GIL
while it computes, and requests run side by side.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy import text

from service import __version__
from service.core.dependencies import AppSettings, DbSession
from service.core.errors import Unavailable
from service.core.tenancy import TenantId
from service.inference import service
from service.inference.runtime import RuntimeCache, get_runtimes
from service.inference.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    PredictRequest,
    PredictResponse,
    ServerLive,
    ServerMetadata,
    ServerReady,
)

oip = APIRouter(prefix="/v2", tags=["inference (Open Inference Protocol v2)"])
predict_router = APIRouter(prefix="/v1/predict", tags=["inference"])

Runtimes = Annotated[RuntimeCache, Depends(get_runtimes)]
NOT_FOUND = {404: {"description": "No such deployment", "content": {"application/json": {"example": {"error": "..."}}}}}
BAD_INPUT = {
    400: {
        "description": "The inputs do not fit the model",
        "content": {"application/json": {"example": {"error": "..."}}},
    }
}


@oip.get("", response_model=ServerMetadata, summary="Server metadata")
def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="fusebox", version=__version__, extensions=[])


@oip.get("/health/live", response_model=ServerLive, summary="The process answers")
def live() -> ServerLive:
    return ServerLive(live=True)


@oip.get("/health/ready", response_model=ServerReady, summary="The database answers", responses={503: {}})
def ready(session: DbSession) -> ServerReady:
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any driver error means not ready
        raise Unavailable(f"the database is unreachable: {type(error).__name__}") from None
    return ServerReady(ready=True)


@oip.get("/models/{name}", response_model=ModelMetadata, responses=NOT_FOUND, summary="Model metadata")
@oip.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=NOT_FOUND)
def model_metadata(
    name: str, tenant_id: TenantId, session: DbSession, runtimes: Runtimes, version: str | None = None
) -> ModelMetadata:
    return service.metadata(session, runtimes, tenant_id, name, version)


@oip.get("/models/{name}/ready", response_model=ModelReady, responses=NOT_FOUND, summary="Model readiness")
@oip.get("/models/{name}/versions/{version}/ready", response_model=ModelReady, responses=NOT_FOUND)
def model_ready(
    name: str, tenant_id: TenantId, session: DbSession, runtimes: Runtimes, version: str | None = None
) -> ModelReady:
    return ModelReady(name=name, ready=service.ready(session, runtimes, tenant_id, name, version))


@oip.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses={**NOT_FOUND, **BAD_INPUT},
    summary="Inference (the newest version)",
)
@oip.post(
    "/models/{name}/versions/{version}/infer", response_model=InferenceResponse, responses={**NOT_FOUND, **BAD_INPUT}
)
def infer(
    name: str,
    request: InferenceRequest,
    tenant_id: TenantId,
    session: DbSession,
    runtimes: Runtimes,
    settings: AppSettings,
    version: str | None = None,
) -> InferenceResponse:
    """One input per feature column, one output per task (probabilities for binary tasks)."""
    return service.infer(session, runtimes, tenant_id, name, version, request, settings.max_inference_rows)


@predict_router.post(
    "/{name}", response_model=PredictResponse, responses={**NOT_FOUND, **BAD_INPUT}, summary="Predict for records"
)
def predict(
    name: str,
    request: PredictRequest,
    tenant_id: TenantId,
    session: DbSession,
    runtimes: Runtimes,
    settings: AppSettings,
) -> PredictResponse:
    """Rows as JSON objects in, one prediction per task and row out, from the newest version of `name`."""
    return service.predict(session, runtimes, tenant_id, name, request, settings.max_inference_rows)
