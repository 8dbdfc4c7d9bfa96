"""Handing jobs to the workers through the broker. Only the job id travels; the worker reads everything
else from the database.

The API sends by task name, on a Celery app of its own that knows no task: worker/app.py builds the
workers' app from the same names and broker settings, so both ends agree without the API importing the
worker. Job state lives in the database, so there is no result backend.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from service.core.config import Settings, get_settings
from service.core.errors import Unavailable

FUSION_TASK = "fusebox.fuse"
FUSION_QUEUE = "fusion"


def broker_options(settings: Settings) -> dict[str, object]:
    if settings.celery_broker_url.startswith("filesystem"):
        # kombu's filesystem transport: one folder for messages in and out, one for processed ones, one for
        # its exchange tables (kombu's default for that is ./control, in whatever the working directory is).
        folders = {name: settings.broker_folder / name for name in ("queue", "processed", "control")}
        queue, processed = folders["queue"], folders["processed"]
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "processed_folder": str(processed),
            "control_folder": str(folders["control"]),
            "store_processed": False,
            "polling_interval": 0.1,
        }
    # Redis hands an unacknowledged message to another worker after this: longer than the longest job.
    return {"visibility_timeout": settings.job_time_limit_s + 3600}


def broker_config(settings: Settings) -> dict[str, object]:
    """The Celery settings the API and the workers share: where messages go and how they are encoded."""
    return {
        "broker_transport_options": broker_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_default_queue": FUSION_QUEUE,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
    }


@lru_cache
def _producer() -> Celery:
    # Not the process's current app: a worker process sends from here too (the lost-job sweep), and its
    # tasks belong to the workers' app.
    settings = get_settings()
    producer = Celery("fusebox-api", broker=settings.celery_broker_url, set_as_current=False)
    producer.conf.update(broker_config(settings))
    return producer


def enqueue_fusion(job_id: uuid.UUID) -> None:
    try:
        _producer().send_task(FUSION_TASK, args=[str(job_id)], retry=False)
    except OperationalError as error:
        raise Unavailable(f"the job queue is unreachable ({error}); try again shortly") from None


def queue_length(settings: Settings) -> int | None:
    """Messages waiting in the fusion queue; None for a broker this does not know how to read."""
    broker_url = settings.celery_broker_url
    if broker_url.startswith(("redis://", "rediss://")):
        return int(_redis(broker_url).llen(FUSION_QUEUE))
    if broker_url.startswith("filesystem"):
        folder = Path(str(broker_options(settings)["data_folder_in"]))
        return sum(1 for path in folder.iterdir() if path.name.endswith(f".{FUSION_QUEUE}.msg"))
    return None


@lru_cache
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
