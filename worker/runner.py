"""One fusion job, start to end: claim it, build the engine's inputs, fuse, publish or record why not."""

from __future__ import annotations

import logging
import shutil
import uuid

from fusion.akf.cache import ComponentCache
from fusion.akf.pipeline import fuse
from fusion.akf.validation import FusionInputError
from fusion.training import Cancelled
from service.core.config import get_settings
from service.core.database import session_scope
from service.core.storage import get_store
from service.jobs.models import FusionJob, JobStatus
from worker.inputs import load_inputs
from worker.progress import JobReporter
from worker.publish import publish
from worker.state import claim, finish

log = logging.getLogger(__name__)


def run_fusion_job(job_id: uuid.UUID) -> None:
    if not claim(job_id):
        log.info("job %s: nothing to run (finished, cancelled or unknown)", job_id)
        return
    settings, store = get_settings(), get_store()
    folder = store.job_folder(job_id)
    reporter = JobReporter(job_id, settings.progress_interval_s)
    try:
        with session_scope() as session:
            inputs = load_inputs(session, store, session.get_one(FusionJob, job_id), settings.worker_device)
        result = fuse(
            inputs.tasks,
            inputs.sources,
            inputs.data,
            inputs.settings,
            on_progress=reporter.progress,
            on_stage=reporter.stage,
            should_cancel=reporter.cancel_requested,
            checkpoint_path=folder / "checkpoint.pt",
            cache=ComponentCache(store.component_cache),
        )
        reporter.stage("deploying")
        version = publish(job_id, result, store)
        log.info("job %s: succeeded, deployed as version %d", job_id, version)
    except Cancelled:
        finish(job_id, JobStatus.CANCELLED)
        log.info("job %s: cancelled", job_id)
    except (FusionInputError, ValueError) as error:
        # The engine's checks of models and data: the message is for the user.
        finish(job_id, JobStatus.FAILED, str(error))
        log.info("job %s: failed: %s", job_id, error)
    except Exception as error:
        log.exception("job %s: failed", job_id)
        finish(job_id, JobStatus.FAILED, f"internal error: {type(error).__name__}: {error}")
    # Checkpoints only serve a redelivery of a job that has not ended; this one has.
    shutil.rmtree(folder, ignore_errors=True)
