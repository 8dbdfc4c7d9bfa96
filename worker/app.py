"""The Celery app. Both the API (to queue jobs) and the workers (to run them) import this module, so it
imports neither torch nor the engine: the task module is named in `include` and loaded by workers only.

Job state lives in the database, so there is no result backend. Fusion jobs are long and expensive:
a message is acknowledged only when its job ends (acks_late), is given back if the worker process dies
(reject_on_worker_lost), a worker takes one job at a time (prefetch 1), and Redis waits longer than the
longest job before it hands an unacknowledged job to another worker (visibility_timeout).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

from service.core.config import Settings, get_settings
from service.core.logs import configure_logging

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
    return {"visibility_timeout": settings.job_time_limit_s + 3600}


def create_celery(settings: Settings) -> Celery:
    app = Celery("fusebox", broker=settings.celery_broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=FUSION_QUEUE,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return app


@setup_logging.connect
def _json_logs(**_: object) -> None:
    """Workers log as the API does, one JSON object per line; Celery's own loggers included. (With a receiver
    on this signal, Celery leaves logging to it.)"""
    configure_logging()


celery_app = create_celery(get_settings())
