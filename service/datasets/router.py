"""/v1/datasets: upload (CSV or Parquet), list, detail."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from starlette.concurrency import run_in_threadpool

from service.core.dependencies import AppSettings, DbSession, Store
from service.core.schemas import Page, page_params
from service.core.uploads import UploadForm, form_dependency, form_fields, multipart_body, require_file
from service.datasets import service
from service.datasets.parsing import TableLimits
from service.datasets.schemas import DatasetList, DatasetMetadata, DatasetOut, DatasetUploadForm
from service.tenants.dependencies import TenantId

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

dataset_form = form_dependency(
    lambda settings: {"file": settings.max_dataset_bytes}, frozenset({"name", "label_columns"})
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    openapi_extra=multipart_body(DatasetUploadForm),
    summary="Upload a table (CSV or Parquet)",
    responses={413: {"description": "The file is over the size limit"}, 422: {"description": "Unusable table"}},
)
async def upload_dataset(
    form: Annotated[UploadForm, Depends(dataset_form)],
    tenant_id: TenantId,
    session: DbSession,
    store: Store,
    settings: AppSettings,
) -> DatasetOut:
    """Numeric columns only; missing values only in the columns named in `label_columns`.

    `curl -F file=@train.csv -F label_columns=income,never_married http://127.0.0.1:8000/v1/datasets`
    """
    upload = require_file(form, "file")
    metadata = form_fields(DatasetMetadata, form)
    limits = TableLimits(max_columns=settings.max_dataset_columns, max_cells=settings.max_dataset_cells)
    dataset = await run_in_threadpool(service.create_dataset, session, store, tenant_id, upload, metadata, limits)
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetList, summary="List datasets, newest first")
def list_datasets(tenant_id: TenantId, session: DbSession, page: Annotated[Page, Depends(page_params)]) -> DatasetList:
    items = service.list_datasets(session, tenant_id, page)
    return DatasetList(items=[DatasetOut.model_validate(item) for item in items])


@router.get("/{dataset_id}", response_model=DatasetOut, summary="One dataset: schema, row count, column statistics")
def get_dataset(dataset_id: uuid.UUID, tenant_id: TenantId, session: DbSession) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session, tenant_id, dataset_id))
