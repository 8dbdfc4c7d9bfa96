"""Handing a job to the workers. Only the job id travels; the worker reads everything else from the database."""

from __future__ import annotations

import uuid

from kombu.exceptions import OperationalError

from service.core.errors import Unavailable
from worker.app import FUSION_TASK, celery_app


def enqueue_fusion(job_id: uuid.UUID) -> None:
    try:
        celery_app.send_task(FUSION_TASK, args=[str(job_id)], retry=False)
    except OperationalError as error:
        raise Unavailable(f"the job queue is unreachable ({error}); try again shortly") from None
