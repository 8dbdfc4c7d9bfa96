"""/v1/models: upload a source model (ONNX plus its optional weights file), list, detail, delete."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from starlette.concurrency import run_in_threadpool

from fusion.intake import IntakeLimits
from service.core.dependencies import AppSettings, DbSession, Store
from service.core.schemas import Page, page_params
from service.core.uploads import UploadForm, form_dependency, form_fields, multipart_body, require_file
from service.models import service
from service.models.schemas import ModelList, ModelMetadata, ModelOut, ModelUploadForm
from service.tenants.dependencies import TenantId

router = APIRouter(prefix="/v1/models", tags=["models"])

model_form = form_dependency(
    lambda settings: {"file": settings.max_model_bytes, "weights": settings.max_weights_bytes},
    frozenset(ModelMetadata.model_fields),
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelOut,
    openapi_extra=multipart_body(ModelUploadForm),
    summary="Upload a trained single-task model (ONNX)",
    responses={
        409: {"description": "The name is taken"},
        413: {"description": "A file is over its size limit"},
        422: {"description": "The model is not usable; the message says what to change"},
    },
)
async def upload_model(
    # The key is checked first: no upload is staged for a caller without one.
    tenant_id: TenantId,
    form: Annotated[UploadForm, Depends(model_form)],
    session: DbSession,
    store: Store,
    settings: AppSettings,
) -> ModelOut:
    """The answer carries the model's signature and its decomposition into components.

    `curl -F file=@income_mlp.onnx -F weights=@income_mlp.onnx.data -F name=income_mlp -F task=income
    -F task_type=binary http://127.0.0.1:8000/v1/models`
    """
    upload = require_file(form, "file")
    metadata = form_fields(ModelMetadata, form)
    limits = IntakeLimits(
        max_model_bytes=settings.max_model_bytes,
        max_weights_bytes=settings.max_weights_bytes,
        max_activation_bytes_per_row=settings.max_activation_bytes_per_row,
        max_constant_tensor_bytes=settings.max_constant_tensor_bytes,
        max_flops_per_row=settings.max_flops_per_row,
    )
    model = await run_in_threadpool(
        service.create_model, session, store, tenant_id, metadata, upload, form.files.get("weights"), limits
    )
    return ModelOut.model_validate(model)


@router.get("", response_model=ModelList, summary="List source models, newest first")
def list_models(
    tenant_id: TenantId,
    session: DbSession,
    page: Annotated[Page, Depends(page_params)],
    name: Annotated[str | None, Query(description="Only the model with this name.")] = None,
) -> ModelList:
    items = service.list_models(session, tenant_id, page, name)
    return ModelList(items=[ModelOut.model_validate(item) for item in items])


@router.get("/{model_id}", response_model=ModelOut, summary="One source model")
def get_model(model_id: uuid.UUID, tenant_id: TenantId, session: DbSession) -> ModelOut:
    return ModelOut.model_validate(service.get_model(session, tenant_id, model_id))


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a source model",
    responses={409: {"description": "A queued or running fusion job uses the model"}},
)
def delete_model(model_id: uuid.UUID, tenant_id: TenantId, session: DbSession, store: Store) -> Response:
    service.delete_model(session, store, tenant_id, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
