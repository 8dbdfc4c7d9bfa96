"""Celery tasks, and the lost-job sweep every worker runs. Loaded by worker processes only (worker.app
names this module in `include`)."""

from __future__ import annotations

import uuid

from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown

from service.core.config import get_settings
from service.core.storage import get_store
from service.jobs import lifecycle
from service.jobs.queue import FUSION_TASK
from worker import supervisor
from worker.app import celery_app
from worker.runner import run_fusion_job
from worker.threads import apply_thread_budget


@celery_app.task(name=FUSION_TASK)
def fuse_job(job_id: str) -> None:
    run_fusion_job(uuid.UUID(job_id))


@worker_ready.connect
def _start_job_processes(**_: object) -> None:
    """The fork server that job processes come from (worker/supervisor.py), ready before the first job."""
    supervisor.prepare()


@worker_ready.connect
def _start_sweeping(**_: object) -> None:
    """A worker that starts sweeps at once: after a host restart, the jobs its predecessor ran go back in the
    queue as soon as their heartbeats are stale, and every running worker keeps sweeping on a timer."""
    lifecycle.start_sweeping(get_settings(), get_store())


@worker_shutdown.connect
def _stop_sweeping(**_: object) -> None:
    lifecycle.stop_sweeping()


@worker_process_init.connect
def _own_database_connections(**_: object) -> None:
    """A prefork child must not share the sweeper's pooled connections, which it inherited from its parent."""
    lifecycle.release_inherited_connections()


@worker_init.connect
@worker_process_init.connect
def _size_threads(**_: object) -> None:
    """Before any job: in the worker's main process (which runs the jobs with --pool=solo or threads), and
    again in each prefork child."""
    apply_thread_budget(get_settings().worker_threads)
