"""One fusion job, start to end: claim it, build the engine's inputs, fuse, publish or record why not.

The worker claims the job and holds its lease (worker/lease.py); the job itself runs in a child process
(worker/supervisor.py), which the worker kills when it outgrows FUSEBOX_WORKER_MEMORY_BYTES or does not
stop in time after a cancel, and then records how the job ended in its place.
"""

from __future__ import annotations

import logging
import signal
import sys
import uuid
from multiprocessing.synchronize import Event
from pathlib import Path

from fusion.akf.cache import ComponentCache, scratch_prefix
from fusion.akf.pipeline import fuse
from fusion.akf.validation import FusionInputError
from fusion.budget import human_bytes
from fusion.training import Cancelled, checkpoint_epoch
from service.core.config import Settings, get_settings
from service.core.logs import configure_logging
from service.core.storage import ArtifactStore, get_store
from service.jobs import lifecycle
from worker.inputs import engine_inputs
from worker.lease import JobLease
from worker.progress import JobReporter
from worker.supervisor import Ending, Outcome, run_watched
from worker.threads import apply_thread_budget

log = logging.getLogger(__name__)


def run_fusion_job(job_id: uuid.UUID) -> None:
    settings, store = get_settings(), get_store()
    attempt = lifecycle.claim(job_id, settings.heartbeat_timeout_s)
    if attempt is None:
        log.info("job %s: nothing to run (finished, cancelled, running elsewhere or unknown)", job_id)
        return
    with JobLease(job_id, attempt, lifecycle.heartbeat_interval_s(settings)) as lease:
        outcome = run_watched(job_process, (job_id, attempt), lambda: lease.should_stop, settings.worker_memory_bytes)
        if outcome.stop_seconds is not None and lease.cancel_requested.is_set():
            how = "stopped by itself" if outcome.ending == Ending.EXITED else "was killed"
            log.info("job %s: cancel seen; the job process %s %.2f s later", job_id, how, outcome.stop_seconds)
        ended_here = _settle(job_id, attempt, outcome, store, settings)
    if ended_here:
        # Checkpoints only serve a later attempt of a job that has not ended; this one has.
        store.remove_job_folder(job_id)
    else:
        # This worker fell silent past the heartbeat timeout: the job was requeued (or ended) without it.
        log.warning("job %s: attempt %d no longer holds the job; leaving its files to whoever does", job_id, attempt)


_NOT_HELD = 3
"""The job process's exit status when its attempt no longer held the job at the end (0: it recorded the end)."""


def job_process(job_id: uuid.UUID, attempt: int, stop: Event) -> None:
    """The job's own process (worker/supervisor.py): `stop` is set when the worker asks it to stop."""
    configure_logging()
    settings, store = get_settings(), get_store()
    apply_thread_budget(settings.worker_threads)
    lifecycle.release_inherited_connections()
    reporter = JobReporter(job_id, attempt, stop.is_set, settings.progress_interval_s)
    if not _run(reporter, store, settings):
        sys.exit(_NOT_HELD)
    # The end is recorded: its checkpoints go now, not once this process has exited and the worker has
    # noticed (which does it again, harmlessly), so that a client seeing the end finds them gone too.
    store.remove_job_folder(job_id)


def _settle(job_id: uuid.UUID, attempt: int, outcome: Outcome, store: ArtifactStore, settings: Settings) -> bool:
    """Record how the job ended when its process could not; True when the job's end is recorded (by either)."""
    if outcome.ending != Ending.EXITED:
        # A killed process leaves its half-written shards (the complete ones serve the next job on the same
        # data and model); the job folder goes with the job.
        for scratch in store.component_cache.glob(f"*/{scratch_prefix(outcome.pid)}*"):
            scratch.unlink(missing_ok=True)
    if outcome.ending == Ending.OVER_BUDGET:
        budget = settings.worker_memory_bytes
        message = (
            f"the job used more memory than the worker's budget of {human_bytes(budget)} "
            f"(FUSEBOX_WORKER_MEMORY_BYTES; it reached {human_bytes(outcome.peak_bytes)} and was stopped): lower "
            "batch_size, d_model, heads, levels or tower_hidden, or run it on workers with a larger budget"
        )
        log.warning("job %s: %s", job_id, message)
        return lifecycle.record_failure(job_id, attempt, message)
    if outcome.ending == Ending.STOPPED:
        return lifecycle.record_cancelled(job_id, attempt)
    if outcome.exitcode == 0:
        return True
    if outcome.exitcode == _NOT_HELD:
        return False
    log.error("job %s: the job process ended with status %s", job_id, outcome.exitcode)
    return lifecycle.record_failure(job_id, attempt, unexpected_end(outcome.exitcode))


def unexpected_end(exitcode: int | None) -> str:
    """The job's error when its process ended neither by itself nor by this worker's hand."""
    if exitcode is not None and exitcode < 0 and -exitcode == signal.SIGKILL:
        # Not this worker's doing: the kernel's out-of-memory killer is the usual sender.
        return (
            "the job process was killed (SIGKILL), most likely by the host running out of memory: lower batch_size, "
            "d_model, heads, levels or tower_hidden, or set FUSEBOX_WORKER_MEMORY_BYTES below the memory the "
            "worker really has, so that the job is refused or stopped before the host runs out"
        )
    if exitcode is not None and exitcode < 0:
        return f"internal error: the job process was ended by signal {-exitcode} ({signal.strsignal(-exitcode)})"
    return f"internal error: the job process ended unexpectedly (exit status {exitcode})"


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
            cache=ComponentCache(store.component_cache, settings.component_cache_max_bytes, reporter.should_stop),
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
