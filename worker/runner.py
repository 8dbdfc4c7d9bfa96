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
from service.core.storage import ArtifactStore, get_store
from service.jobs import lifecycle
from worker.inputs import engine_inputs
from worker.lease import JobLease
from worker.progress import JobReporter

log = logging.getLogger(__name__)


def run_fusion_job(job_id: uuid.UUID) -> None:
    settings, store = get_settings(), get_store()
    attempt = lifecycle.claim(job_id, settings.heartbeat_timeout_s)
    if attempt is None:
        log.info("job %s: nothing to run (finished, cancelled, running elsewhere or unknown)", job_id)
        return
    with JobLease(job_id, attempt, lifecycle.heartbeat_interval_s(settings)) as lease:
        ended_here = _run(JobReporter(lease, settings.progress_interval_s), store, settings)
    if ended_here:
        # Checkpoints only serve a later attempt of a job that has not ended; this one has.
        store.remove_job_folder(job_id)
    else:
        # This worker fell silent past the heartbeat timeout: the job was requeued (or ended) without it.
        log.warning("job %s: attempt %d no longer holds the job; leaving its files to whoever does", job_id, attempt)


def _run(reporter: JobReporter, store: ArtifactStore, settings: Settings) -> bool:
    """Fuse and publish; True when this attempt recorded how the job ended."""
    job_id, attempt = reporter.job_id, reporter.attempt
    checkpoint = store.job_folder(job_id) / "checkpoint.pt"
    try:
        _note_resumption(reporter, checkpoint)
        inputs = engine_inputs(lifecycle.load_inputs(job_id, store, settings.data), settings.worker_device)
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
        try:
            version = lifecycle.publish(job_id, attempt, result.model, result.report.to_dict(), store)
        except lifecycle.NotHeld:
            raise Cancelled("cancelled before it was deployed") from None
        log.info("job %s: succeeded, deployed as version %d", job_id, version)
        return True
    except Cancelled:
        log.info("job %s: stopped (cancelled or taken over)", job_id)
        return lifecycle.record_cancelled(job_id, attempt)
    except (FusionInputError, ValueError) as error:
        # The engine's checks of models and data: the message is for the user, and a retry would fail alike.
        log.info("job %s: failed: %s", job_id, error)
        return lifecycle.record_failure(job_id, attempt, str(error))
    except Exception as error:
        log.exception("job %s: failed", job_id)
        return lifecycle.record_failure(job_id, attempt, f"internal error: {type(error).__name__}: {error}")


def _note_resumption(reporter: JobReporter, checkpoint: Path) -> None:
    """An earlier attempt's epoch checkpoint, which `fit` resumes from, recorded on the job."""
    epoch = checkpoint_epoch(checkpoint)
    if epoch > 0:
        log.info("job %s: resuming from the checkpoint of epoch %d", reporter.job_id, epoch)
        reporter.resumed_from(epoch)
