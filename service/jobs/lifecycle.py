"""What a worker does to a job: everything the workers (worker/) read and write of the service goes
through the functions of this module, as plain data, so that they depend on no table, query or domain.

A job's life in a worker: `claim` it, which counts an attempt; the attempt number is the worker's lease.
Every later write matches the job only while it still runs under that attempt (`held_by`,
service/jobs/recovery.py): if the worker stalls past the heartbeat timeout, the job is requeued and
claimed again under the next number, and whatever the stalled worker still writes changes nothing.
While it runs, the worker beats (`heartbeat`, which also says whether a cancel was asked for) and records
progress; it ends the job with `publish`, `record_cancelled` or `record_failure`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import onnx
from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from service.core.config import Settings
from service.core.database import get_engine, rows_matched, session_scope, utcnow
from service.core.storage import ArtifactStore, StoredFile
from service.datasets.models import Dataset
from service.datasets.references import change_message
from service.deployments.models import FusedModel
from service.deployments.service import deploy, register_fused_model
from service.jobs.models import FusionJob, JobStatus
from service.jobs.recovery import LostJobSweeper, held_by, lost_before
from service.jobs.schemas import JobCreate

_DEPLOY_ATTEMPTS = 5
_sweepers: list[LostJobSweeper] = []


class LeaseState(StrEnum):
    HELD = "held"
    CANCEL_REQUESTED = "cancel requested"
    LOST = "lost"
    """The job is no longer this attempt's: requeued and taken by another worker, or ended."""


class NotHeld(Exception):
    """The job was cancelled, or taken over by another worker, before this attempt could publish it."""


@dataclass(frozen=True)
class StoredSource:
    """A source model as intake stored it: the canonical ONNX file, and the signature intake recorded."""

    name: str
    path: Path
    signature: dict[str, Any]


class DatasetChanged(ValueError):
    """A referenced dataset's files differ from what was registered: the job must not train on them."""


@dataclass(frozen=True)
class JobInputs:
    """What a job fuses: its validated spec, its source models as stored, its datasets' Parquet files
    (an upload's one stored file, or a reference's files)."""

    spec: JobCreate
    sources: dict[uuid.UUID, StoredSource]
    """By model id, as the spec's tasks name them."""
    train: list[Path | str]
    """Paths, or the URLs of objects in a cloud store."""
    validation: list[Path | str] | None
    test: list[Path | str] | None


def heartbeat_interval_s(settings: Settings) -> float:
    """How often a worker beats: several beats per timeout, so that one slow beat is no false alarm."""
    return min(1.0, settings.heartbeat_timeout_s / 4)


def claim(job_id: uuid.UUID, heartbeat_timeout_s: float) -> int | None:
    """Mark the job running and count the attempt; returns the attempt number, None when there is nothing to run.

    A queued job is taken (it resumes from its checkpoint if an earlier attempt left one). So is a running
    job whose worker sent no heartbeat for the timeout: a message redelivered after its worker was lost.
    A job running elsewhere, finished, or flagged for cancelling is left alone.
    """
    now = utcnow()
    lost = lost_before(now - timedelta(seconds=heartbeat_timeout_s))
    with session_scope() as session:
        return session.execute(
            update(FusionJob)
            .where(FusionJob.id == job_id, ~FusionJob.cancel_requested, or_(FusionJob.status == JobStatus.QUEUED, lost))
            .values(
                status=JobStatus.RUNNING,
                attempts=FusionJob.attempts + 1,
                started_at=func.coalesce(FusionJob.started_at, now),
                heartbeat_at=now,
                stage="loading models and data",
            )
            .returning(FusionJob.attempts)
        ).scalar()


def heartbeat(job_id: uuid.UUID, attempt: int) -> LeaseState:
    """The attempt is alive; reads the cancel flag with the same statement."""
    with session_scope() as session:
        row = session.execute(
            update(FusionJob)
            .where(*held_by(job_id, attempt))
            .values(heartbeat_at=utcnow())
            .returning(FusionJob.cancel_requested)
        ).first()
    if row is None:
        return LeaseState.LOST
    return LeaseState.CANCEL_REQUESTED if row.cancel_requested else LeaseState.HELD


def lease_state(job_id: uuid.UUID, attempt: int) -> LeaseState:
    """Whether a cancel was asked for, without a heartbeat: a read, cheap enough to ask several times a second."""
    with session_scope() as session:
        requested = session.scalar(select(FusionJob.cancel_requested).where(*held_by(job_id, attempt)))
    if requested is None:
        return LeaseState.LOST
    return LeaseState.CANCEL_REQUESTED if requested else LeaseState.HELD


def load_inputs(job_id: uuid.UUID, store: ArtifactStore, data_root: Path) -> JobInputs:
    """Raises DatasetChanged when a referenced dataset's files were changed or removed since registration."""
    with session_scope() as session:
        job = session.get_one(FusionJob, job_id)
        datasets = {
            dataset.id: _dataset_files(dataset, store, data_root)
            for dataset in session.scalars(
                select(Dataset).where(Dataset.id.in_([job.dataset_id, job.validation_dataset_id, job.test_dataset_id]))
            )
        }
        return JobInputs(
            spec=JobCreate.model_validate(job.spec),
            sources={
                row.id: StoredSource(name=row.name, path=store.path(row.sha256), signature=dict(row.signature))
                for row in job.sources
            },
            train=datasets[job.dataset_id],
            validation=datasets.get(job.validation_dataset_id) if job.validation_dataset_id is not None else None,
            test=datasets.get(job.test_dataset_id) if job.test_dataset_id is not None else None,
        )


def _dataset_files(dataset: Dataset, store: ArtifactStore, data_root: Path) -> list[Path | str]:
    if dataset.files is None:
        assert dataset.sha256 is not None, "an uploaded dataset has its stored file"
        return [store.path(dataset.sha256)]
    changed = change_message(dataset.name, dataset.files, data_root)
    if changed:
        raise DatasetChanged(changed)
    return [entry["url"] if "url" in entry else data_root / entry["path"] for entry in dataset.files]


def recorded_metrics(job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The per-epoch metrics on the job: a resumed job's earlier attempt recorded some."""
    with session_scope() as session:
        return session.scalar(select(FusionJob.metrics).where(FusionJob.id == job_id)) or []


@dataclass(frozen=True)
class TrainingPace:
    """Where training stands: the fraction of its steps done, the epoch, and the pace so far."""

    fraction_done: float
    epoch: int
    rows_per_second: float | None
    eta_seconds: float | None


ENDED = {"eta_seconds": None}
"""An ended job has no time left; its last pace stays as a record of how fast it trained."""


def record_progress(
    job_id: uuid.UUID, attempt: int, pace: TrainingPace, metrics: list[dict[str, Any]] | None = None
) -> None:
    """`metrics`, when given, replaces the per-epoch metrics: one entry per finished epoch."""
    values: dict[str, object] = {
        "progress": pace.fraction_done,
        "epoch": pace.epoch,
        "rows_per_second": pace.rows_per_second,
        "eta_seconds": pace.eta_seconds,
    }
    if metrics is not None:
        values["metrics"] = metrics
    _write(job_id, attempt, values)


def record_stage(job_id: uuid.UUID, attempt: int, stage: str) -> None:
    _write(job_id, attempt, {"stage": stage[:255]})


def record_resumption(job_id: uuid.UUID, attempt: int, epoch: int) -> None:
    _write(job_id, attempt, {"resumed_from_epoch": epoch, "stage": f"resuming from the checkpoint of epoch {epoch}"})


def record_cancelled(job_id: uuid.UUID, attempt: int) -> bool:
    """End the job as cancelled; False when this attempt no longer holds it."""
    return _finish(job_id, attempt, JobStatus.CANCELLED, None)


def record_failure(job_id: uuid.UUID, attempt: int, error: str) -> bool:
    """End the job as failed with `error` for its user; False when this attempt no longer holds it."""
    return _finish(job_id, attempt, JobStatus.FAILED, error)


def publish(
    job_id: uuid.UUID, attempt: int, model: onnx.ModelProto, report: dict[str, Any], store: ArtifactStore
) -> int:
    """Store, register and deploy the fused model in one transaction with the job's success; returns the
    version it is deployed as. Raises NotHeld (and keeps nothing) when the job was cancelled or taken over.

    The success is conditional on this attempt still holding the job and no cancel having been asked
    for, which makes a job register one fused model and one deployment, however often it was delivered.
    """
    stored = store.put_bytes(model.SerializeToString())
    for _ in range(_DEPLOY_ATTEMPTS):
        try:
            with session_scope() as session:
                succeeded = rows_matched(
                    session,
                    update(FusionJob)
                    .where(*held_by(job_id, attempt), ~FusionJob.cancel_requested)
                    .values(**ENDED, status=JobStatus.SUCCEEDED, progress=1.0, stage="deployed", finished_at=utcnow()),
                )
                if not succeeded:
                    raise NotHeld
                job = session.get_one(FusionJob, job_id)
                fused = register_fused_model(session, job.tenant_id, job.id, model, stored)
                deployment = deploy(session, job.tenant_id, job.name, fused)
                job.report = report
                job.deployed_version = deployment.version
                return deployment.version
        except IntegrityError:  # another job of the same name took this version number first
            continue
        except NotHeld:
            _discard(store, stored)
            raise
    raise RuntimeError(f"could not deploy the fused model of job {job_id}: version numbers kept colliding")


def start_sweeping(settings: Settings, store: ArtifactStore) -> None:
    """Sweep for lost jobs in this process (service/jobs/recovery.py) until `stop_sweeping`."""
    sweeper = LostJobSweeper(settings, store)
    sweeper.start()
    _sweepers.append(sweeper)


def stop_sweeping() -> None:
    while _sweepers:
        _sweepers.pop().stop()


def release_inherited_connections() -> None:
    """A forked worker process must not share the pooled connections its parent opened (the sweep's)."""
    get_engine().dispose(close=False)


def _write(job_id: uuid.UUID, attempt: int, values: dict[str, object]) -> None:
    with session_scope() as session:
        session.execute(update(FusionJob).where(*held_by(job_id, attempt)).values(**values))


def _finish(job_id: uuid.UUID, attempt: int, status: JobStatus, error: str | None) -> bool:
    with session_scope() as session:
        ended = rows_matched(
            session,
            update(FusionJob)
            .where(*held_by(job_id, attempt))
            .values(**ENDED, status=status, error=error, stage=status.value, finished_at=utcnow()),
        )
    return bool(ended)


def _discard(store: ArtifactStore, stored: StoredFile) -> None:
    """The exported file, unless it was there before or another fused model has the same bytes."""
    if not stored.created:
        return
    with session_scope() as session:
        if not session.scalar(select(exists().where(FusedModel.sha256 == stored.sha256))):
            store.delete(stored.sha256)
