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

from service.core.bodies import parse_body
from service.core.config import Settings
from service.core.errors import BadRequest, TooLarge, Unavailable
from service.core.metrics import record_inference
from service.deployments.batching import batch_stats, effective_batching
from service.deployments.models import Deployment
from service.deployments.served import resolve
from service.deployments.service import find_deployment, list_versions
from service.inference.batching import batcher_for
from service.inference.oip_tensors import TensorSpec, from_bytes, from_json, shape_problem
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


def predict_json(
    session: Session, runtimes: RuntimeCache, tenant_id: str, name: str, body: bytes, max_rows: int
) -> bytes:
    """`predict` for a raw JSON body, answered as JSON bytes: parsing and encoding 10^5 records take seconds,
    which the caller spends on a worker thread rather than on the event loop."""
    # Each record is one JSON object: counting braces (at memory speed) bounds the records before parsing them
    # into Python objects, which would cost seconds and gigabytes for a body of millions.
    if (objects := body.count(b"{")) > max_rows + 1:
        raise TooLarge(f"about {objects - 1:,} records are more than the limit of {max_rows:,} per request")
    request = parse_body(PredictRequest, body)
    return predict(session, runtimes, tenant_id, name, request, max_rows).model_dump_json().encode()


def _tensors(specs: list[TensorSpec]) -> list[TensorMetadata]:
    return [TensorMetadata(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs]


def _feeds(model: RuntimeModel, request: WireRequest, max_rows: int) -> tuple[dict[str, np.ndarray], int]:
    specs = model.input_specs
    given = {tensor.name for tensor in request.inputs}
    if given != specs.keys() or len(given) != len(request.inputs):
        _refuse_names(list(specs), [tensor.name for tensor in request.inputs])
    problems = [
        problem
        for tensor in request.inputs
        if (problem := shape_problem(tensor.name, tensor.datatype, tensor.shape, specs[tensor.name]))
    ]
    if problems:
        raise BadRequest.listing("the inputs do not fit the model", problems)
    rows = {tensor.name: tensor.shape[0] for tensor in request.inputs if tensor.shape}
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
    """Columns of the records, arranged as each input takes them: [N] for one column, [N, k] for k. Every
    column is checked before any is refused, so that one answer names every problem."""
    columns_of = deployment.fused_model.input_columns
    feeds, problems = {}, []
    for spec in model.inputs:
        columns = []
        for column in columns_of.get(spec.name, [spec.name]):
            values, column_problems = _column(records, column, spec)
            columns.append(values)
            problems += column_problems
        if not problems:
            feeds[spec.name] = columns[0] if len(spec.shape) == 1 else np.stack(columns, axis=1)
    if problems:
        raise BadRequest.listing("the records cannot be scored", problems)
    return feeds


def _column(records: list[dict[str, Any]], column: str, spec: TensorSpec) -> tuple[np.ndarray, list[str]]:
    """One column's values, or what is wrong with them: rows lacking it, values that are not finite numbers,
    fractions where the model takes category ids."""
    missing, not_numbers, fractions = [], [], []
    values = []
    for row, record in enumerate(records):
        value = record.get(column)
        if value is None:
            missing.append(row)
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            not_numbers.append(row)
        elif spec.numpy_dtype.kind in "iu" and value != int(value):
            fractions.append(row)
        else:
            values.append(value)
    problems = []
    if missing:
        problems.append(f"column '{column}' is missing from {_rows(missing)}")
    if not_numbers:
        example = records[not_numbers[0]][column]
        problems.append(f"column '{column}' must hold finite numbers: {example!r} in {_rows(not_numbers)}")
    if fractions:
        problems.append(f"column '{column}' holds category ids and needs whole numbers: {_rows(fractions)}")
    if problems:
        return np.empty(0, dtype=spec.numpy_dtype), problems
    return np.asarray(values, dtype=spec.numpy_dtype), []


def _rows(rows: list[int], shown: int = 5) -> str:
    named = ", ".join(map(str, rows[:shown]))
    more = f" and {len(rows) - shown:,} more" if len(rows) > shown else ""
    return f"record{'s' if len(rows) > 1 else ''} {named}{more}"
