"""A job row turned into what the engine's `fuse` takes: tasks, source models, data, settings."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import pandas as pd
from sqlalchemy.orm import Session

from fusion.akf.pipeline import FusionData, FusionSettings
from fusion.akf.sources import FusionSource
from fusion.data.files import split_validation
from fusion.intake import InputSpec, LoadedModel, ModelSignature
from fusion.tasks import Task
from service.core.storage import ArtifactStore
from service.datasets.models import Dataset
from service.jobs.models import FusionJob
from service.jobs.schemas import JobCreate
from service.models.models import UploadedModel


@dataclass(frozen=True)
class JobInputs:
    tasks: list[Task]
    sources: list[FusionSource]
    data: FusionData
    settings: FusionSettings


def load_inputs(session: Session, store: ArtifactStore, job: FusionJob, device: str | None) -> JobInputs:
    spec = JobCreate.model_validate(job.spec)
    rows = {row.id: row for row in job.sources}
    tasks = [task.to_task() for task in spec.tasks]
    sources = [
        FusionSource(
            name=rows[ref.id].name,
            task=task.name,
            loaded=_loaded_model(store, rows[ref.id]),
            input_columns={name: tuple(columns) for name, columns in ref.input_columns.items()},
        )
        for task in spec.tasks
        for ref in task.models
    ]
    train = _frame(session, store, job.dataset_id)
    if job.validation_dataset_id is not None:
        validation = _frame(session, store, job.validation_dataset_id)
    else:
        train, validation = split_validation(train, spec.validation_fraction, spec.hyperparameters.seed)
    test = _frame(session, store, job.test_dataset_id) if job.test_dataset_id is not None else None
    return JobInputs(tasks, sources, FusionData(train, validation, test), FusionSettings.from_plan(spec, device))


def _loaded_model(store: ArtifactStore, row: UploadedModel) -> LoadedModel:
    """The canonical model intake stored, with the signature it recorded: no second intake run."""
    model = onnx.load_model_from_string(store.path(row.sha256).read_bytes())
    signature = dict(row.signature)
    inputs = tuple(InputSpec(**spec) for spec in signature.pop("inputs"))
    return LoadedModel(model=model, signature=ModelSignature(inputs=inputs, **signature))


def _frame(session: Session, store: ArtifactStore, dataset_id: object) -> pd.DataFrame:
    dataset = session.get_one(Dataset, dataset_id)
    return pd.read_parquet(store.path(dataset.sha256))
