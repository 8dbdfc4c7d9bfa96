"""A fusion job's life as a stream of events, read from its row: the worker writes progress there, and
there is no message bus to subscribe to, so the stream polls.

Each poll opens a short session of its own, in a worker thread: a stream can last as long as the job,
and must neither hold a pooled connection all that time nor read from one long transaction (SQLite in
WAL mode would keep showing the snapshot the transaction started with). Only what changed since the
previous poll is sent, so a client that connects mid-job first receives everything so far (its status,
its progress, every finished epoch), then the changes, then one `done` event, after which the stream
ends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, noload
from starlette.concurrency import run_in_threadpool

from service.jobs.models import FusionJob, JobStatus
from service.jobs.schemas import JobOut

POLL_INTERVAL_S = 0.5
KEEPALIVE_S = 15.0
"""A comment line after this long without events, so that proxies keep the connection open."""
RETRY_MS = 2000


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]

    def encode(self) -> str:
        return f"event: {self.name}\ndata: {json.dumps(self.data, separators=(',', ':'))}\n\n"


PROGRESS_FIELDS = ("progress", "epoch", "max_epochs", "rows_per_second", "eta_seconds")


@dataclass
class JobWatch:
    """What the client has been told so far; `changes` compares a fresh reading of the row with it."""

    status: tuple[Any, ...] | None = None
    progress: tuple[Any, ...] | None = None
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)

    def changes(self, job: JobOut) -> list[Event]:
        events = []
        status = (job.status, job.stage, job.attempts, job.cancel_requested)
        if status != self.status:
            self.status = status
            events.append(Event("status", _fields(job, "status", "stage", "attempts", "cancel_requested")))
        progress = _fields(job, *PROGRESS_FIELDS)
        if tuple(progress.values()) != self.progress:
            self.progress = tuple(progress.values())
            events.append(Event("progress", progress))
        for entry in job.metrics:
            metrics = entry.model_dump()
            if self.epochs.get(entry.epoch) != metrics:
                self.epochs[entry.epoch] = metrics
                events.append(Event("epoch", metrics))
        if JobStatus(job.status).finished:
            events.append(Event("done", job.model_dump(mode="json")))
        return events


def _fields(job: JobOut, *names: str) -> dict[str, Any]:
    return {name: getattr(job, name) for name in names}


def read_job(session_factory: Callable[[], Session], tenant_id: str, job_id: uuid.UUID) -> JobOut | None:
    """The job as GET /v1/fusion-jobs/{id} answers it, or None when it is gone (or another tenant's)."""
    with session_factory() as session:
        query = select(FusionJob).where(FusionJob.id == job_id, FusionJob.tenant_id == tenant_id)
        job = session.scalars(query.options(noload(FusionJob.sources))).first()
        return JobOut.model_validate(job) if job is not None else None


async def job_events(
    session_factory: Callable[[], Session],
    tenant_id: str,
    job_id: uuid.UUID,
    disconnected: Callable[[], Awaitable[bool]],
    poll_interval_s: float = POLL_INTERVAL_S,
) -> AsyncIterator[str]:
    """Server-sent events, encoded, until the job has finished, its row disappeared or the client left
    (asked before each poll: a client gone during a quiet stretch would otherwise be noticed only when
    the next write fails)."""
    yield f"retry: {RETRY_MS}\n\n"
    watch = JobWatch()
    last_sent = time.monotonic()
    while not await disconnected():
        job = await run_in_threadpool(read_job, session_factory, tenant_id, job_id)
        if job is None:
            return
        events = watch.changes(job)
        for event in events:
            yield event.encode()
        now = time.monotonic()
        if events:
            last_sent = now
        elif now - last_sent >= KEEPALIVE_S:
            last_sent = now
            yield ": keep-alive\n\n"
        if JobStatus(job.status).finished:
            return
        await asyncio.sleep(poll_interval_s)
