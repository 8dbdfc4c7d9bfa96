"""gRPC inference on the real stack: tritonclient.grpc, with its defaults, against the KServe v2 service the
API process serves beside HTTP; the same answers, keys, tenancy, batching and metrics as the HTTP route, and
hostile requests refused with a status code and a message, never INTERNAL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.helpers.jobs import CENSUS_JOB
from tests.helpers.served import feeds_and_expected, grpc_inputs, metric_total
from tests.helpers.stacks import Stack

NAME = CENSUS_JOB


@pytest.fixture(scope="module")
def stack(embedded_stack: Stack) -> Stack:
    return embedded_stack


@pytest.fixture(scope="module")
def auth(stack: Stack) -> dict[str, str]:
    """gRPC metadata keys are lower case."""
    return {"authorization": f"Bearer {stack.api_key}"}


def test_tritonclient_grpc_answers_like_onnxruntime(
    stack: Stack, auth: dict[str, str], deployed: Path, rows: pd.DataFrame
) -> None:
    feeds, expected = feeds_and_expected(deployed, rows)
    client = triton_grpc.InferenceServerClient(stack.grpc_target)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata().name == "fusebox"
        metadata = client.get_model_metadata(NAME, headers=auth)
        assert client.is_model_ready(NAME, headers=auth) and client.is_model_ready(NAME, "1", headers=auth)
        answer = client.infer(NAME, grpc_inputs(feeds), headers=auth)
        first = next(iter(expected))
        one = client.infer(
            NAME,
            grpc_inputs(feeds),
            model_version="1",
            outputs=[triton_grpc.InferRequestedOutput(first)],
            request_id="req-7",
            headers=auth,
        )
    finally:
        client.close()
    assert list(metadata.versions) == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [
        (name, "INT64" if values.dtype == np.int64 else "FP32", [-1]) for name, values in feeds.items()
    ]
    assert {t.name for t in metadata.outputs} == set(expected)
    response = answer.get_response()
    assert (response.model_name, response.model_version) == (NAME, "1")
    assert len(response.raw_output_contents) == len(expected)
    for name, values in expected.items():
        np.testing.assert_allclose(answer.as_numpy(name), values, rtol=1e-5)
    assert [output.name for output in one.get_response().outputs] == [first]
    assert one.get_response().id == "req-7"
    np.testing.assert_allclose(one.as_numpy(first), expected[first], rtol=1e-5)


def _request(feeds: dict[str, np.ndarray], raw: bool = True) -> service_pb2.ModelInferRequest:
    """A request as any v2 client may build it: values in raw_input_contents, or in the typed contents."""
    request = service_pb2.ModelInferRequest(model_name=NAME)
    for name, values in feeds.items():
        datatype = "INT64" if values.dtype == np.int64 else "FP32"
        tensor = request.inputs.add(name=name, datatype=datatype, shape=list(values.shape))
        if raw:
            request.raw_input_contents.append(values.tobytes())
        elif datatype == "INT64":
            tensor.contents.int64_contents.extend(values.tolist())
        else:
            tensor.contents.fp32_contents.extend(values.tolist())
    return request


def test_typed_contents_answer_like_raw_ones(
    stack: Stack, auth: dict[str, str], deployed: Path, rows: pd.DataFrame
) -> None:
    feeds, expected = feeds_and_expected(deployed, rows)
    with grpc.insecure_channel(stack.grpc_target) as channel:
        answer = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            _request(feeds, raw=False), metadata=tuple(auth.items())
        )
    for output, raw in zip(answer.outputs, answer.raw_output_contents, strict=True):
        values = np.frombuffer(raw, np.dtype(np.float32).newbyteorder("<"))
        assert output.datatype == "FP32" and list(output.shape) == [len(rows)]
        np.testing.assert_allclose(values, expected[output.name], rtol=1e-5)


def test_concurrent_grpc_requests_are_batched_and_counted(
    stack: Stack, auth: dict[str, str], deployed: Path, rows: pd.DataFrame
) -> None:
    route = f"/v1/deployments/{NAME}/versions/1"
    with stack.client() as client:
        before = client.patch(route, json={"max_batch_size": 64, "max_batch_wait_ms": 50}).json()
        metrics_before = client.get("/metrics").text
    singles = [rows.iloc[[row]] for row in range(len(rows))]
    expected = [feeds_and_expected(deployed, single) for single in singles]

    async def send_all() -> list[triton_aio.InferResult]:
        async with triton_aio.InferenceServerClient(stack.grpc_target) as client:
            calls = [client.infer(NAME, grpc_inputs(feeds), headers=auth) for feeds, _ in expected]
            return await asyncio.gather(*calls)

    try:
        answers = asyncio.run(send_all())
    finally:
        with stack.client() as client:
            after = client.get(route).json()
            client.patch(route, json={"max_batch_wait_ms": None, "max_batch_size": None})
            metrics_after = client.get("/metrics").text
    assert after["requests"] - before["requests"] == len(singles)
    assert after["runs"] - before["runs"] < len(singles), after
    for answer, (_, outputs) in zip(answers, expected, strict=True):
        for name, values in outputs.items():
            np.testing.assert_allclose(answer.as_numpy(name), values, rtol=1e-5)

    def grown(sample: str, **labels: str) -> float:
        return metric_total(metrics_after, sample, **labels) - metric_total(metrics_before, sample, **labels)

    assert grown("fusebox_inference_rows_total", model=NAME, version="1") == len(singles)
    assert grown("fusebox_inference_duration_seconds_count", model=NAME, version="1") == len(singles)
    assert grown("fusebox_grpc_requests_total", method="ModelInfer", code="OK") == len(singles)


def test_hostile_grpc_requests_get_a_status_and_a_message(
    stack: Stack, auth: dict[str, str], deployed: Path, rows: pd.DataFrame
) -> None:
    feeds, _ = feeds_and_expected(deployed, rows.head(2))
    names = list(feeds)
    dense = next(name for name in names if feeds[name].dtype == np.float32)
    ids = next(name for name in names if feeds[name].dtype == np.int64)
    at = {name: position for position, name in enumerate(names)}
    stranger = {"authorization": f"Bearer {stack.new_tenant('stranger')}"}

    def changed(**replace: np.ndarray) -> service_pb2.ModelInferRequest:
        return _request({**feeds, **replace})

    def edited(edit: Callable[[service_pb2.ModelInferRequest], object]) -> service_pb2.ModelInferRequest:
        request = _request(feeds)
        edit(request)
        return request

    def retyped(request: service_pb2.ModelInferRequest) -> None:
        request.inputs[at[dense]].datatype = "FP64"
        request.raw_input_contents[at[dense]] = feeds[dense].astype(np.float64).tobytes()

    def mixed(request: service_pb2.ModelInferRequest) -> None:
        request.inputs[0].contents.fp32_contents.append(1.0)

    def wrong_field(request: service_pb2.ModelInferRequest) -> None:
        """Every input in contents; the dense one's floats as whole numbers in int64_contents."""
        del request.raw_input_contents[:]
        for position, name in enumerate(names):
            contents = request.inputs[position].contents
            if feeds[name].dtype == np.int64 or name == dense:
                contents.int64_contents.extend(feeds[name].astype(np.int64).tolist())
            else:
                contents.fp32_contents.extend(feeds[name].tolist())

    invalid, missing, unauthenticated = "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED"
    cases: list[tuple[str, service_pb2.ModelInferRequest | bytes, dict[str, str] | None, str, str]] = [
        ("no key", _request(feeds), {}, unauthenticated, "needs an API key"),
        ("wrong key", _request(feeds), {"authorization": "Bearer fbx_nope"}, unauthenticated, "not valid"),
        ("other scheme", _request(feeds), {"authorization": f"Basic {stack.api_key}"}, unauthenticated, "API key"),
        ("another tenant's model", _request(feeds), stranger, missing, "is not deployed"),
        ("unknown model", edited(lambda r: setattr(r, "model_name", "nope")), None, missing, "'nope' is not deployed"),
        ("unknown version", edited(lambda r: setattr(r, "model_version", "9")), None, missing, "version 9"),
        ("bad version", edited(lambda r: setattr(r, "model_version", "x")), None, missing, "no version 'x'"),
        ("no model name", edited(lambda r: setattr(r, "model_name", "")), None, invalid, "'model_name'"),
        ("no inputs", service_pb2.ModelInferRequest(model_name=NAME), None, invalid, "at least one input"),
        ("not protobuf", b"\xff\xff\xff", None, invalid, "not a valid ModelInferRequest"),
        ("datatype", edited(retyped), None, invalid, "the model expects FP32"),
        ("rank", changed(**{dense: feeds[dense].reshape(2, 1)}), None, invalid, "the model expects [-1]"),
        ("rows differ", changed(**{dense: feeds[dense][:1]}), None, invalid, "same number of rows"),
        ("raw size", edited(lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 4)), None, invalid, "4 bytes of"),
        ("raw count", edited(lambda r: r.raw_input_contents.pop()), None, invalid, "raw_input_contents has"),
        ("raw and contents", edited(mixed), None, invalid, "carries raw_input_contents"),
        ("wrong contents field", edited(wrong_field), None, invalid, "contents.fp32_contents"),
        ("NaN", changed(**{dense: np.array([np.nan, 1], np.float32)}), None, invalid, "must be finite"),
        ("id outside table", changed(**{ids: np.array([10**6, 0])}), None, invalid, "outside its embedding table"),
        ("unknown input", edited(lambda r: setattr(r.inputs[0], "name", "nope")), None, invalid, "unknown: ['nope']"),
        ("unknown output", edited(lambda r: r.outputs.add(name="nope")), None, invalid, "unknown output"),
        (
            "too many rows",
            edited(lambda r: [tensor.shape.__setitem__(0, 10**6) for tensor in r.inputs]),
            None,
            "RESOURCE_EXHAUSTED",
            "more than the limit",
        ),
    ]
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        raw_infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for label, request, metadata, code, message in cases:
            call = raw_infer if isinstance(request, bytes) else stub.ModelInfer
            with pytest.raises(grpc.RpcError) as refused:
                call(request, metadata=tuple((auth if metadata is None else metadata).items()))
            error = refused.value
            assert error.code().name == code, (label, error.code(), error.details())
            assert message in error.details(), (label, error.details())
        assert stub.ModelInfer(_request(feeds), metadata=tuple(auth.items())).model_name == NAME


def test_metadata_needs_a_key_and_names_unknown_models(stack: Stack, auth: dict[str, str], deployed: Path) -> None:
    client = triton_grpc.InferenceServerClient(stack.grpc_target)
    try:
        for call, code, message in (
            (lambda: client.get_model_metadata(NAME), "UNAUTHENTICATED", "needs an API key"),
            (lambda: client.is_model_ready(NAME), "UNAUTHENTICATED", "needs an API key"),
            (lambda: client.get_model_metadata("nope", headers=auth), "NOT_FOUND", "'nope' is not deployed"),
            (lambda: client.is_model_ready(NAME, "9", headers=auth), "NOT_FOUND", "version 9"),
        ):
            with pytest.raises(InferenceServerException) as refused:
                call()
            assert refused.value.status() == f"StatusCode.{code}" and message in refused.value.message()
    finally:
        client.close()
