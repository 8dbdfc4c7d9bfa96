"""/v1/datasets: upload (CSV or Parquet) or register by reference (Parquet under the data root), list, detail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from starlette.concurrency import run_in_threadpool

from service.core.config import get_settings
from service.core.dependencies import AppSettings, DbSession, Store
from service.core.errors import Unprocessable
from service.core.schemas import Page, page_params
from service.core.storage import StagedFile, get_store
from service.core.uploads import (
    form_fields,
    inline_schema,
    is_json,
    json_fields,
    multipart_body,
    read_form,
    require_file,
)
from service.datasets import service
from service.datasets.limits import TableLimits
from service.datasets.schemas import (
    DatasetList,
    DatasetMetadata,
    DatasetOut,
    DatasetReference,
    DatasetReferenceForm,
    DatasetUploadForm,
)
from service.tenants.dependencies import TenantId

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@dataclass(frozen=True)
class DatasetUpload:
    file: StagedFile
    metadata: DatasetMetadata


async def dataset_source(request: Request) -> AsyncIterator[DatasetUpload | DatasetReference]:
    """A JSON body or a form with `uri` is a reference; a form with `file` is an upload, staged as it streams."""
    if is_json(request):
        yield await json_fields(DatasetReference, request)
        return
    with ExitStack() as stack:
        limits = {"file": get_settings().max_dataset_bytes}
        form = await read_form(request, get_store(), limits, frozenset({"name", "label_columns", "uri"}), stack)
        if "uri" not in form.fields:
            yield DatasetUpload(require_file(form, "file"), form_fields(DatasetMetadata, form))
        elif form.files:
            raise Unprocessable("send either a file or a uri, not both")
        else:
            yield form_fields(DatasetReference, form)


def _request_body() -> dict[str, Any]:
    """OpenAPI: the upload form, the reference form, or the reference as JSON."""
    body = multipart_body(DatasetUploadForm)
    content = body["requestBody"]["content"]
    content["multipart/form-data"]["schema"] = {
        "oneOf": [
            inline_schema(DatasetUploadForm),
            inline_schema(DatasetReferenceForm),
        ]
    }
    content["application/json"] = {"schema": inline_schema(DatasetReference)}
    return body


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    openapi_extra=_request_body(),
    summary="Upload a table (CSV or Parquet), or register Parquet files under the data root by reference",
    responses={
        413: {"description": "The file is over the size limit"},
        422: {"description": "Unusable table, or a URI that names no usable Parquet files under the data root"},
    },
)
async def create_dataset(
    # The key is checked first: no body is read for a caller without one.
    tenant_id: TenantId,
    source: Annotated[DatasetUpload | DatasetReference, Depends(dataset_source)],
    session: DbSession,
    store: Store,
    settings: AppSettings,
) -> DatasetOut:
    """Numeric columns only; missing values only in the columns named in `label_columns`.

    `curl -F file=@train.csv -F label_columns=income,never_married http://127.0.0.1:8000/v1/datasets`

    By reference (nothing is copied; a job fails if the files change after this):
    `curl -H 'Content-Type: application/json' -d '{"uri": "census/train/*.parquet"}' .../v1/datasets`
    """
    limits = TableLimits.from_settings(settings)
    if isinstance(source, DatasetReference):
        dataset = await run_in_threadpool(service.register_reference, session, tenant_id, source, settings.data, limits)
    else:
        dataset = await run_in_threadpool(
            service.create_dataset, session, store, tenant_id, source.file, source.metadata, limits
        )
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetList, summary="List datasets, newest first")
def list_datasets(tenant_id: TenantId, session: DbSession, page: Annotated[Page, Depends(page_params)]) -> DatasetList:
    items = service.list_datasets(session, tenant_id, page)
    return DatasetList(items=[DatasetOut.model_validate(item) for item in items])


@router.get("/{dataset_id}", response_model=DatasetOut, summary="One dataset: schema, row count, column statistics")
def get_dataset(dataset_id: uuid.UUID, tenant_id: TenantId, session: DbSession) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session, tenant_id, dataset_id))
