"""/v1/fusion-jobs: create (validated, then queued), list, detail with progress and report, cancel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Response, status
from fastapi.responses import FileResponse

from service.core.config import get_settings
from service.core.dependencies import AppSettings, DbSession, Store
from service.core.schemas import Page, page_params
from service.core.storage import get_store
from service.jobs import service
from service.jobs.models import JobStatus
from service.jobs.recovery import LostJobSweeper
from service.jobs.schemas import JobCreate, JobList, JobOut
from service.tenants.dependencies import TenantId


@asynccontextmanager
async def _sweep_lost_jobs(_app: FastAPI) -> AsyncIterator[None]:
    """Every API process sweeps for jobs whose worker died, so that none stays `running` while no worker is left
    to notice (service/jobs/recovery.py)."""
    sweeper = LostJobSweeper(get_settings(), get_store())
    sweeper.start()
    try:
        yield
    finally:
        sweeper.stop()


router = APIRouter(prefix="/v1/fusion-jobs", tags=["fusion jobs"], lifespan=_sweep_lost_jobs)

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=128,
        description="Any unique string (a UUID): a retry of the request with the same key and spec returns the "
        "job the first one created, with 200 instead of 202; the same key with another spec answers 409.",
    ),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    summary="Start a fusion job",
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the job the first request created"},
        409: {"description": "The Idempotency-Key was used before with a different spec"},
        422: {"description": "The spec does not fit the models, the data or a worker's memory; `problems` says what"},
        503: {"description": "The job queue is unreachable; nothing was stored"},
    },
)
def create_job(
    spec: JobCreate,
    tenant_id: TenantId,
    session: DbSession,
    response: Response,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> JobOut:
    """Checks, before queueing, that every column exists, labels fit their task types, every model
    input can be fed from the data, and the job's estimated peak memory fits a worker's budget
    (FUSEBOX_WORKER_MEMORY_BYTES). Poll `GET /v1/fusion-jobs/{id}` for progress."""
    job, created = service.create_job(
        session, tenant_id, spec, settings.data, idempotency_key, settings.worker_memory_bytes
    )
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    return JobOut.model_validate(job)


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
def cancel_job(job_id: uuid.UUID, tenant_id: TenantId, session: DbSession, store: Store) -> JobOut:
    """A queued job answers `cancelled`; a running one `running` with `cancel_requested`, and its worker stops
    within a few seconds. Either way the job's checkpoints are removed."""
    return JobOut.model_validate(service.cancel_job(session, store, tenant_id, job_id))
