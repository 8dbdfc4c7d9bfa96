"""A job's stored inputs (service/jobs/lifecycle.py's JobInputs) turned into what the engine's `fuse` takes:
tasks, source models, data, settings."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from fusion.akf.pipeline import FusionData, FusionSettings
from fusion.akf.sources import FusionSource
from fusion.data.tables import ParquetTable, Table, split_table
from fusion.intake import InputSpec, LoadedModel, ModelSignature
from fusion.tasks import Task
from service.jobs.lifecycle import JobInputs, StoredSource


@dataclass(frozen=True)
class EngineInputs:
    tasks: list[Task]
    sources: list[FusionSource]
    data: FusionData
    settings: FusionSettings


def engine_inputs(job: JobInputs, device: str | None) -> EngineInputs:
    spec = job.spec
    sources = [
        FusionSource(
            name=job.sources[ref.id].name,
            task=task.name,
            loaded=_loaded_model(job.sources[ref.id]),
            input_columns={name: tuple(columns) for name, columns in ref.input_columns.items()},
        )
        for task in spec.tasks
        for ref in task.models
    ]
    # Parquet tables are read chunk by chunk (row group by row group) by the engine: never whole.
    train: Table = ParquetTable(job.train)
    if job.validation is not None:
        validation: Table = ParquetTable(job.validation)
    else:
        assert spec.validation_fraction is not None, "JobCreate asks for a validation dataset or a fraction"
        train, validation = split_table(train, spec.validation_fraction, spec.hyperparameters.seed)
    test = ParquetTable(job.test) if job.test is not None else None
    tasks = [task.to_task() for task in spec.tasks]
    return EngineInputs(tasks, sources, FusionData(train, validation, test), FusionSettings.from_plan(spec, device))


def _loaded_model(source: StoredSource) -> LoadedModel:
    """The canonical model intake stored, with the signature it recorded: no second intake run."""
    model = onnx.load_model_from_string(source.path.read_bytes())
    signature = dict(source.signature)
    inputs = tuple(InputSpec(**spec) for spec in signature.pop("inputs"))
    return LoadedModel(model=model, signature=ModelSignature(inputs=inputs, **signature))
