"""Inference routes: Open Inference Protocol v2 under /v2 (with the binary tensor extension), and
/v1/predict for records in, predictions out.

Infer runs on the event loop, so that concurrent requests can meet in one batch; ONNX Runtime runs on its
own threads. The other routes are plain functions, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from service import __version__
from service.core.dependencies import AppSettings, DbSession
from service.inference import service
from service.inference.declared_rows import DeclaredRows
from service.inference.dependencies import Runtimes
from service.inference.protocol import BINARY_EXTENSION, BINARY_TYPE, HEADER_LENGTH, JSON_TYPE, read_body
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
    inline_refs,
)
from service.tenants.dependencies import TenantId

oip = APIRouter(prefix="/v2", tags=["inference (Open Inference Protocol v2)"])
predict_router = APIRouter(prefix="/v1", tags=["inference"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such deployment", "content": {"application/json": {"example": {"error": "..."}}}}
}
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_refs(InferenceRequest.model_json_schema())},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "Binary tensor extension: the JSON header, then the tensors' bytes in input order.",
            },
        },
    }
}
"""The body is read raw (it may carry binary tensors), so its schema is given to the docs by hand."""
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    400: {
        "description": "The inputs do not fit the model",
        "content": {"application/json": {"example": {"error": "..."}}},
    }
}


# Infer first: routes are matched in the order they are declared, and this one answers at the highest rate.
@oip.post(
    "/models/{name}/infer",
    response_model=InferenceResponse,
    responses={**NOT_FOUND, **BAD_INPUT},
    summary="Inference (the newest version)",
    openapi_extra=INFER_BODY,
)
@oip.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferenceResponse,
    responses={**NOT_FOUND, **BAD_INPUT},
    openapi_extra=INFER_BODY,
)
async def infer(
    name: str,
    request: Request,
    tenant_id: TenantId,
    runtimes: Runtimes,
    settings: AppSettings,
    version: str | None = None,
) -> Response:
    """One input per feature column, one output per task (probabilities for binary tasks). Tensors may
    come as JSON or as raw bytes after the JSON header (`Inference-Header-Content-Length`)."""
    # No request session: the deployment is resolved on short sessions of its own (deployments/served.py), so that a
    # request waiting for its batch holds no pooled connection.
    body = await read_body(request, settings.inference_max_body_bytes, DeclaredRows(settings.max_inference_rows).feed)
    header_length = request.headers.get(HEADER_LENGTH)
    content, json_length = await service.infer(runtimes, settings, tenant_id, name, version, body, header_length)
    if json_length is None:
        return Response(content, media_type=JSON_TYPE)
    return Response(content, media_type=BINARY_TYPE, headers={HEADER_LENGTH: str(json_length)})


@oip.get("", response_model=ServerMetadata, summary="Server metadata")
def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="fusebox", version=__version__, extensions=[BINARY_EXTENSION])


@oip.get("/health/live", response_model=ServerLive, summary="The process answers")
def live() -> ServerLive:
    return ServerLive(live=True)


@oip.get("/health/ready", response_model=ServerReady, summary="The database answers", responses={503: {}})
def ready(session: DbSession) -> ServerReady:
    service.check_database(session)
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


PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_refs(PredictRequest.model_json_schema())}},
    }
}
"""Read raw and parsed on a worker thread (a body of 10^5 records takes seconds to parse), so given by hand."""


@predict_router.post(
    "/predict/{name}",
    response_model=PredictResponse,
    responses={**NOT_FOUND, **BAD_INPUT},
    summary="Predict for records",
    openapi_extra=PREDICT_BODY,
)
async def predict(
    name: str,
    request: Request,
    tenant_id: TenantId,
    session: DbSession,
    runtimes: Runtimes,
    settings: AppSettings,
) -> Response:
    """Rows as JSON objects in, one prediction per task and row out, from the newest version of `name`."""
    body = await read_body(request, settings.inference_max_body_bytes)
    content = await run_in_threadpool(
        service.predict_json, session, runtimes, tenant_id, name, body, settings.max_inference_rows
    )
    return Response(content, media_type=JSON_TYPE)
