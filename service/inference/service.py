"""Inference: resolve a deployment, check the request against the model, run ONNX Runtime."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.core.errors import BadRequest, TooLarge
from service.inference.deployments import find_deployment, list_versions
from service.inference.models import Deployment
from service.inference.runtime import LoadedModel, RuntimeCache
from service.inference.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    PredictRequest,
    PredictResponse,
    ResponseOutput,
    TensorMetadata,
)
from service.inference.tensors import TensorSpec, datatype_of, to_array

_ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")


def metadata(session: Session, runtimes: RuntimeCache, tenant_id: str, name: str, version: str | None) -> ModelMetadata:
    deployment = find_deployment(session, tenant_id, name, version)
    model = runtimes.get(deployment.fused_model.sha256)
    versions = [str(v) for v in list_versions(session, tenant_id, name)] if version is None else [version]
    return ModelMetadata(name=name, versions=versions, inputs=_tensors(model.inputs), outputs=_tensors(model.outputs))


def ready(session: Session, runtimes: RuntimeCache, tenant_id: str, name: str, version: str | None) -> bool:
    """Deployed and loadable: loading here warms the session for the first request."""
    runtimes.get(find_deployment(session, tenant_id, name, version).fused_model.sha256)
    return True


def infer(
    session: Session,
    runtimes: RuntimeCache,
    tenant_id: str,
    name: str,
    version: str | None,
    request: InferenceRequest,
    max_rows: int,
) -> InferenceResponse:
    deployment = find_deployment(session, tenant_id, name, version)
    model = runtimes.get(deployment.fused_model.sha256)
    feeds = _feeds(model, request, max_rows)
    outputs = _wanted_outputs(model, request)
    results = _run(model, feeds, outputs)
    return InferenceResponse(
        model_name=deployment.name,
        model_version=str(deployment.version),
        id=request.id,
        outputs=[
            ResponseOutput(
                name=name, shape=list(value.shape), datatype=datatype_of(value), data=value.reshape(-1).tolist()
            )
            for name, value in results.items()
        ],
    )


def predict(
    session: Session,
    runtimes: RuntimeCache,
    tenant_id: str,
    name: str,
    request: PredictRequest,
    max_rows: int,
) -> PredictResponse:
    if len(request.records) > max_rows:
        raise TooLarge(f"{len(request.records):,} records are more than the limit of {max_rows:,} per request")
    deployment = find_deployment(session, tenant_id, name)
    model = runtimes.get(deployment.fused_model.sha256)
    feeds = _record_feeds(model, deployment, request.records)
    tasks = [task["name"] for task in deployment.fused_model.tasks]
    results = _run(model, feeds, tasks)
    return PredictResponse(
        model_name=deployment.name,
        model_version=str(deployment.version),
        predictions=[{task: results[task][row].tolist() for task in tasks} for row in range(len(request.records))],
    )


def _tensors(specs: list[TensorSpec]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs]


def _feeds(model: LoadedModel, request: InferenceRequest, max_rows: int) -> dict[str, np.ndarray]:
    specs = {spec.name: spec for spec in model.inputs}
    given = [tensor.name for tensor in request.inputs]
    unknown = [name for name in given if name not in specs]
    missing = [name for name in specs if name not in given]
    if unknown or missing or len(given) != len(set(given)):
        raise BadRequest(
            f"the model's inputs are {sorted(specs)}"
            + (f"; unknown: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
            + ("; some inputs are given twice" if len(given) != len(set(given)) else "")
        )
    feeds = {
        tensor.name: to_array(tensor.name, tensor.datatype, tensor.shape, tensor.data, specs[tensor.name])
        for tensor in request.inputs
    }
    rows = {name: array.shape[0] for name, array in feeds.items() if array.ndim}
    if len(set(rows.values())) > 1:
        raise BadRequest(f"every input needs the same number of rows (first dimension); got {rows}")
    if rows and max(rows.values()) > max_rows:
        raise TooLarge(f"{max(rows.values()):,} rows are more than the limit of {max_rows:,} per request")
    return feeds


def _wanted_outputs(model: LoadedModel, request: InferenceRequest) -> list[str]:
    names = [spec.name for spec in model.outputs]
    if request.outputs is None:
        return names
    wanted = [output.name for output in request.outputs]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}; the model's outputs are {names}")
    return wanted


def _record_feeds(model: LoadedModel, deployment: Deployment, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Columns of the records, arranged as each input takes them: [N] for one column, [N, k] for k."""
    columns_of = deployment.fused_model.input_columns
    feeds = {}
    for spec in model.inputs:
        columns = [_column(records, column, spec) for column in columns_of.get(spec.name, [spec.name])]
        feeds[spec.name] = columns[0] if len(spec.shape) == 1 else np.stack(columns, axis=1)
    return feeds


def _column(records: list[dict[str, Any]], column: str, spec: TensorSpec) -> np.ndarray:
    values = []
    for row, record in enumerate(records):
        value = record.get(column)
        if value is None:
            raise BadRequest(f"record {row} lacks column '{column}'")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise BadRequest(f"record {row}: column '{column}' must be a finite number, not {value!r}")
        if spec.numpy_dtype.kind in "iu" and value != int(value):
            raise BadRequest(f"record {row}: column '{column}' holds category ids and must be a whole number")
        values.append(value)
    return np.asarray(values, dtype=spec.numpy_dtype)


def _run(model: LoadedModel, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    try:
        return model.run(feeds, outputs)
    except Exception as error:  # onnxruntime raises pybind classes with no common base besides Exception
        message = _ORT_NOISE.sub("", " ".join(str(error).split()))[:400]
        raise BadRequest(f"the model could not run on these inputs: {message}") from None
