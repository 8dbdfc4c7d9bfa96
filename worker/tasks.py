"""Celery tasks. Loaded by worker processes only (worker.app names this module in `include`)."""

from __future__ import annotations

import uuid

from worker.app import FUSION_TASK, celery_app
from worker.runner import run_fusion_job


@celery_app.task(name=FUSION_TASK)
def fuse_job(job_id: str) -> None:
    run_fusion_job(uuid.UUID(job_id))
