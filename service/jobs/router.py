"""/v1/fusion-jobs: create (validated, then queued), list, detail with progress and report, cancel."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from fastapi.responses import FileResponse

from service.core.dependencies import DbSession, Store
from service.core.schemas import Page, page_params
from service.core.tenancy import TenantId
from service.jobs import service
from service.jobs.models import JobStatus
from service.jobs.schemas import JobCreate, JobList, JobOut

router = APIRouter(prefix="/v1/fusion-jobs", tags=["fusion jobs"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Start a fusion job",
    responses={
        422: {"description": "The spec does not fit the models or data; `problems` lists every issue"},
        503: {"description": "The job queue is unreachable; nothing was stored"},
    },
)
def create_job(spec: JobCreate, tenant_id: TenantId, session: DbSession) -> JobOut:
    """Checks, before queueing, that every column exists, labels fit their task types, and every model
    input can be fed from the data. Poll `GET /v1/fusion-jobs/{id}` for progress."""
    return JobOut.model_validate(service.create_job(session, tenant_id, spec))


@router.get("", response_model=JobList, summary="List fusion jobs, newest first")
def list_jobs(
    tenant_id: TenantId,
    session: DbSession,
    page: Annotated[Page, Depends(page_params)],
    status: Annotated[JobStatus | None, Query(description="Only jobs in this state.")] = None,
) -> JobList:
    return JobList(items=[JobOut.model_validate(job) for job in service.list_jobs(session, tenant_id, page, status)])


@router.get("/{job_id}", response_model=JobOut, summary="Status, progress, per-epoch metrics, error, report")
def get_job(job_id: uuid.UUID, tenant_id: TenantId, session: DbSession) -> JobOut:
    return JobOut.model_validate(service.get_job(session, tenant_id, job_id))


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    summary="Download the fused ONNX model",
    responses={200: {"content": {"application/octet-stream": {}}}, 409: {"description": "The job has not succeeded"}},
)
def download_model(job_id: uuid.UUID, tenant_id: TenantId, session: DbSession, store: Store) -> FileResponse:
    """One input per feature column, one output per task; metadata_props describe the tasks."""
    path, filename = service.fused_model_file(session, store, tenant_id, job_id)
    return FileResponse(path, media_type="application/octet-stream", filename=filename)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Cancel a queued or running job",
    responses={409: {"description": "The job has finished already"}},
)
def cancel_job(job_id: uuid.UUID, tenant_id: TenantId, session: DbSession) -> JobOut:
    return JobOut.model_validate(service.cancel_job(session, tenant_id, job_id))
