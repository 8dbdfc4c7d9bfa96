"""The workers' Celery app. It imports neither torch nor the engine: the task module is named in `include`
and loaded by worker processes only. The API sends jobs on an app of its own (service/jobs/queue.py),
built from the same task name, queue and broker settings.

Fusion jobs are long and expensive: a message is acknowledged only when its job ends (acks_late), is given
back if the worker process dies (reject_on_worker_lost), and a worker takes one job at a time (prefetch 1).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import setup_logging

from service.core.config import Settings, get_settings
from service.core.logs import configure_logging
from service.jobs.queue import broker_config


def create_celery(settings: Settings) -> Celery:
    app = Celery("fusebox", broker=settings.celery_broker_url, include=["worker.tasks"])
    app.conf.update(
        broker_config(settings),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
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
