"""Inference: resolve a deployment, check the request against the model, run ONNX Runtime."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.core.config import Settings
from service.core.errors import BadRequest, TooLarge, Unavailable
from service.core.metrics import record_inference
from service.deployments.batching import batch_stats, effective_batching
from service.deployments.models import Deployment
from service.deployments.served import resolve
from service.deployments.service import find_deployment, list_versions
from service.inference.batching import batcher_for
from service.inference.oip_tensors import TensorSpec, check_shape, from_bytes, from_json
from service.inference.protocol import WireRequest, decode_request, encode_response
from service.inference.runtime import RuntimeCache, RuntimeModel
from service.inference.schemas import (
    ModelMetadata,
    PredictRequest,
    PredictResponse,
    TensorMetadata,
)

Encoded = TypeVar("Encoded")

_OFFLOAD_BYTES = 1 << 16
"""Bodies and answers larger than this are decoded and encoded on a worker thread: a 1024-row JSON
request takes milliseconds to parse, which the event loop must not spend while other requests wait."""


@dataclass(frozen=True)
class Prepared:
    request: WireRequest
    feeds: dict[str, np.ndarray]
    rows: int
    outputs: list[str]


def metadata(session: Session, runtimes: RuntimeCache, tenant_id: str, name: str, version: str | None) -> ModelMetadata:
    deployment = find_deployment(session, tenant_id, name, version)
    model = runtimes.get(deployment.fused_model.sha256)
    versions = [str(v) for v in list_versions(session, tenant_id, name)] if version is None else [version]
    return ModelMetadata(name=name, versions=versions, inputs=_tensors(model.inputs), outputs=_tensors(model.outputs))


def check_database(session: Session) -> None:
    """The server is ready when its database answers."""
    try:
        session.execute(text("SELECT 1"))
    except Exception as error:  # any driver error means not ready
        raise Unavailable(f"the database is unreachable: {type(error).__name__}") from None


def ready(session: Session, runtimes: RuntimeCache, tenant_id: str, name: str, version: str | None) -> bool:
    """Deployed and loadable: loading here warms the session for the first request."""
    runtimes.get(find_deployment(session, tenant_id, name, version).fused_model.sha256)
    return True


async def infer(
    runtimes: RuntimeCache,
    settings: Settings,
    tenant_id: str,
    name: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
) -> tuple[bytes, int | None]:
    """An OIP v2 request body in, the response body out (with its JSON header's length when binary)."""
    decode = partial(decode_request, body, header_length)
    return await serve(runtimes, settings, tenant_id, name, version, decode, len(body), encode_response)


async def serve(
    runtimes: RuntimeCache,
    settings: Settings,
    tenant_id: str,
    name: str,
    version: str | None,
    decode: Callable[[], WireRequest],
    size: int,
    encode: Callable[[str, int, dict[str, np.ndarray], WireRequest], Encoded],
) -> Encoded:
    """One inference request of any wire format (`decode` reads it, `size` bytes; `encode` writes the answer):
    resolved, checked against the model, batched with the model's other requests and recorded in the metrics,
    the same way for HTTP and gRPC."""
    started = time.perf_counter()
    served = await resolve(tenant_id, name, version)
    model = runtimes.peek(served.sha256)
    if model is None:
        model = await run_in_threadpool(runtimes.get, served.sha256)
    max_rows = settings.max_inference_rows
    if size > _OFFLOAD_BYTES:
        prepared = await run_in_threadpool(prepare, model, decode, max_rows)
    else:
        prepared = prepare(model, decode, max_rows)
    batch_rows, batch_wait_ms = effective_batching(served, settings)
    batcher = batcher_for(model, batch_stats(served.sha256), batch_rows, batch_wait_ms / 1000)
    results = await batcher.run(prepared.feeds, prepared.rows, prepared.outputs)
    answer = (served.name, served.version, results, prepared.request)
    if sum(values.size for values in results.values()) * 8 > _OFFLOAD_BYTES:
        encoded = await run_in_threadpool(encode, *answer)
    else:
        encoded = encode(*answer)
    record_inference(tenant_id, served.name, served.version, prepared.rows, time.perf_counter() - started)
    return encoded


def prepare(model: RuntimeModel, decode: Callable[[], WireRequest], max_rows: int) -> Prepared:
    request = decode()
    feeds, rows = _feeds(model, request, max_rows)
    model.check_values(feeds)
    return Prepared(request, feeds, rows, _wanted_outputs(model, request.outputs))


def predict(
    session: Session,
    runtimes: RuntimeCache,
    tenant_id: str,
    name: str,
    request: PredictRequest,
    max_rows: int,
) -> PredictResponse:
    started = time.perf_counter()
    if len(request.records) > max_rows:
        raise TooLarge(f"{len(request.records):,} records are more than the limit of {max_rows:,} per request")
    deployment = find_deployment(session, tenant_id, name)
    model = runtimes.get(deployment.fused_model.sha256)
    feeds = _record_feeds(model, deployment, request.records)
    model.check_values(feeds)
    tasks = [task["name"] for task in deployment.fused_model.tasks]
    results = model.run(feeds, tasks)
    answer = PredictResponse(
        model_name=deployment.name,
        model_version=str(deployment.version),
        predictions=[{task: results[task][row].tolist() for task in tasks} for row in range(len(request.records))],
    )
    record_inference(
        tenant_id, deployment.name, deployment.version, len(request.records), time.perf_counter() - started
    )
    return answer


def _tensors(specs: list[TensorSpec]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs]


def _feeds(model: RuntimeModel, request: WireRequest, max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    specs = model.input_specs
    given = {tensor.name for tensor in request.inputs}
    if given != specs.keys() or len(given) != len(request.inputs):
        _refuse_names(list(specs), [tensor.name for tensor in request.inputs])
    rows = {}
    for tensor in request.inputs:
        check_shape(tensor.name, tensor.datatype, tensor.shape, specs[tensor.name])
        if tensor.shape:
            rows[tensor.name] = tensor.shape[0]
    count = max(rows.values(), default=1)
    if count > max_rows:  # before any data is converted: the limit also bounds the memory a request takes
        raise TooLarge(f"{count:,} rows are more than the limit of {max_rows:,} per request")
    json_inputs = [tensor for tensor in request.inputs if tensor.size is None]
    feeds = from_json(json_inputs, specs, request.may_hold_booleans)
    if len(json_inputs) < len(request.inputs):
        binary = [tensor for tensor in request.inputs if tensor.size is not None]
        feeds.update(from_bytes(binary, specs, request.tensor_bytes, request.size_label))
    counts = dict(zip(rows.values(), rows, strict=False))  # one input named per row count
    if len(counts) > 1:
        examples = ", ".join(f"'{name}' has {count}" for count, name in list(counts.items())[:3])
        raise BadRequest(f"every input needs the same number of rows (first dimension): {examples}")
    return {name: feeds[name] for name in specs}, count


def _refuse_names(expected: list[str], given: list[str]) -> None:
    unknown = [name for name in given if name not in expected]
    missing = [name for name in expected if name not in given]
    raise BadRequest(
        f"the model's inputs are {sorted(expected)}"
        + (f"; unknown: {unknown[:20]}" if unknown else "")
        + (f"; missing: {missing}" if missing else "")
        + ("; some inputs are given twice" if len(given) != len(set(given)) else "")
    )


def _wanted_outputs(model: RuntimeModel, wanted: list[str] | None) -> list[str]:
    names = model.output_names
    if wanted is None:
        return names
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown[:20]}; the model's outputs are {names}")
    return list(dict.fromkeys(wanted))


def _record_feeds(model: RuntimeModel, deployment: Deployment, records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
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
