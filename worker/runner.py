"""One fusion job, start to end: claim it, build the engine's inputs, fuse, publish or record why not."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from fusion.akf.cache import ComponentCache
from fusion.akf.pipeline import fuse
from fusion.akf.validation import FusionInputError
from fusion.training import Cancelled, checkpoint_epoch
from service.core.config import Settings, get_settings
from service.core.database import session_scope
from service.core.storage import ArtifactStore, get_store
from service.jobs.models import FusionJob, JobStatus
from service.jobs.recovery import heartbeat_interval_s, remove_job_files
from worker.inputs import load_inputs
from worker.lease import JobLease
from worker.progress import JobReporter
from worker.publish import publish
from worker.state import claim, finish

log = logging.getLogger(__name__)


def run_fusion_job(job_id: uuid.UUID) -> None:
    settings, store = get_settings(), get_store()
    attempt = claim(job_id, settings.heartbeat_timeout_s)
    if attempt is None:
        log.info("job %s: nothing to run (finished, cancelled, running elsewhere or unknown)", job_id)
        return
    with JobLease(job_id, attempt, heartbeat_interval_s(settings)) as lease:
        ended_here = _run(JobReporter(lease, settings.progress_interval_s), store, settings)
    if ended_here:
        # Checkpoints only serve a later attempt of a job that has not ended; this one has.
        remove_job_files(store, job_id)
    else:
        # This worker fell silent past the heartbeat timeout: the job was requeued (or ended) without it.
        log.warning("job %s: attempt %d no longer holds the job; leaving its files to whoever does", job_id, attempt)


def _run(reporter: JobReporter, store: ArtifactStore, settings: Settings) -> bool:
    """Fuse and publish; True when this attempt recorded how the job ended."""
    job_id, attempt = reporter.job_id, reporter.lease.attempt
    checkpoint = store.job_folder(job_id) / "checkpoint.pt"
    try:
        _note_resumption(reporter, checkpoint)
        with session_scope() as session:
            inputs = load_inputs(session, store, session.get_one(FusionJob, job_id), settings.worker_device)
        result = fuse(
            inputs.tasks,
            inputs.sources,
            inputs.data,
            inputs.settings,
            on_progress=reporter.progress,
            on_stage=reporter.stage,
            should_cancel=reporter.should_stop,
            checkpoint_path=checkpoint,
            cache=ComponentCache(store.component_cache, settings.component_cache_max_bytes),
        )
        reporter.stage("deploying")
        version = publish(job_id, attempt, result, store)
        log.info("job %s: succeeded, deployed as version %d", job_id, version)
        return True
    except Cancelled:
        log.info("job %s: stopped (cancelled or taken over)", job_id)
        return finish(job_id, attempt, JobStatus.CANCELLED)
    except (FusionInputError, ValueError) as error:
        # The engine's checks of models and data: the message is for the user, and a retry would fail alike.
        log.info("job %s: failed: %s", job_id, error)
        return finish(job_id, attempt, JobStatus.FAILED, str(error))
    except Exception as error:
        log.exception("job %s: failed", job_id)
        return finish(job_id, attempt, JobStatus.FAILED, f"internal error: {type(error).__name__}: {error}")


def _note_resumption(reporter: JobReporter, checkpoint: Path) -> None:
    """An earlier attempt's epoch checkpoint, which `fit` resumes from, recorded on the job."""
    epoch = checkpoint_epoch(checkpoint)
    if epoch > 0:
        log.info("job %s: resuming from the checkpoint of epoch %d", reporter.job_id, epoch)
        reporter.resumed_from(epoch)
