"""/v1/fusion-jobs/{id}/events: a job's status changes, progress, epoch metrics and completion, live."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from service.core.database import get_session_factory
from service.core.dependencies import DbSession
from service.events.service import job_events
from service.jobs.service import get_job
from service.tenants.dependencies import TenantId

router = APIRouter(prefix="/v1/fusion-jobs", tags=["fusion jobs"])

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
EXAMPLE = (
    'event: status\ndata: {"status":"running","stage":"training the fusion",...}\n\n'
    'event: progress\ndata: {"progress":42.5,"epoch":3,"max_epochs":10}\n\n'
    'event: epoch\ndata: {"epoch":3,"train_loss":0.21,"validation":{"income":0.93}}\n\n'
    "event: done\ndata: {...the job, as GET /v1/fusion-jobs/{id} answers it...}\n\n"
)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    summary="Follow a job live (server-sent events)",
    responses={
        200: {"content": {"text/event-stream": {"example": EXAMPLE}}, "description": "The event stream"},
        404: {"description": "No such job"},
    },
)
def job_event_stream(job_id: uuid.UUID, tenant_id: TenantId, session: DbSession, request: Request) -> StreamingResponse:
    """Events, each `event: NAME` and `data: JSON`: `status` (status, stage, attempts, cancel_requested),
    `progress` (percent, epoch, max_epochs), `epoch` (one per finished epoch: train loss and each task's
    validation metric), and last `done` (the whole job, with its report or error), after which the stream
    ends. A client that connects mid-job first gets everything so far. Only changes are sent (the job row
    is read every 0.5 s), with a comment line every 15 s of silence."""
    get_job(session, tenant_id, job_id)  # 404 before the stream starts
    stream = job_events(get_session_factory(), tenant_id, job_id, request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers=STREAM_HEADERS)
