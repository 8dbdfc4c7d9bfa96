"""Serving: dynamic batching (in process against a real ONNX Runtime session, and over HTTP), the binary
tensor extension through tritonclient, and hostile inference requests answered 400 with a message."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from onnx import TensorProto, helper, numpy_helper
from tritonclient.utils import InferenceServerException

from fusion.onnx_runtime import model_feeds
from service.core.config import Settings
from service.core.errors import BadRequest
from service.inference.batching import Batcher
from service.inference.oip_tensors import TensorSpec, ValueCheck, from_bytes
from service.inference.protocol import WireRequest, decode_request
from service.inference.runtime import RuntimeModel, create_session
from tests.helpers.jobs import CENSUS_JOB
from tests.helpers.stacks import Stack

NAME = CENSUS_JOB
"""The deployment of the Census job the session shares (tests/helpers/jobs.py)."""


# --- dynamic batching in process: a real session of a model slow enough to keep ONNX Runtime busy ---


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> RuntimeModel:
    """x [N, 1] -> echo [N] (x itself, to see that rows come back to their request) and heavy [N] (matrix
    products, to hold ONNX Runtime for as long as a test needs)."""
    rng = np.random.default_rng(0)
    width = 512
    weights = [numpy_helper.from_array(rng.normal(0, 0.01, (1, width)).astype(np.float32), "w0")]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h0"])]
    for layer in range(1, 5):
        weights.append(numpy_helper.from_array(rng.normal(0, 0.05, (width, width)).astype(np.float32), f"w{layer}"))
        nodes += [
            helper.make_node("MatMul", [f"h{layer - 1}", f"w{layer}"], [f"m{layer}"]),
            helper.make_node("Relu", [f"m{layer}"], [f"h{layer}"]),
        ]
    weights += [
        numpy_helper.from_array(np.array([1], np.int64), "axis"),
        numpy_helper.from_array(np.array([-1]), "flat"),
    ]
    nodes += [
        helper.make_node("ReduceSum", ["h4", "axis"], ["heavy"], keepdims=0),
        helper.make_node("Reshape", ["x", "flat"], ["echo"]),
    ]
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N"]) for name in ("echo", "heavy")],
        weights,
    )
    path = tmp_path_factory.mktemp("slow") / "slow.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return RuntimeModel(create_session(str(path), Settings(inference_threads=1)), {})


def _rows(start: int, count: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(start, start + count, dtype=np.float32).reshape(count, 1)}


def _seconds_for(model: RuntimeModel, rows: int) -> float:
    started = time.perf_counter()
    model.run(_rows(0, rows), ["heavy"])
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def busy_rows(slow_model: RuntimeModel) -> int:
    """Rows that keep ONNX Runtime busy for about a second on this machine."""
    return max(1000, int(1000 / _seconds_for(slow_model, 1000)))


def test_concurrent_requests_share_calls_and_get_their_own_rows(slow_model: RuntimeModel) -> None:
    async def scenario() -> tuple[list[dict[str, np.ndarray]], Batcher]:
        batcher = Batcher(slow_model, ThreadPoolExecutor(2), max_rows=64, max_wait_s=0.05)
        sizes = [1 + position % 3 for position in range(40)]
        starts = np.cumsum([0, *sizes[:-1]])
        calls = [
            batcher.run(_rows(int(start), size), size, ["echo", "heavy"])
            for start, size in zip(starts, sizes, strict=True)
        ]
        return await asyncio.gather(*calls), batcher

    results, batcher = asyncio.run(scenario())
    assert batcher.stats.requests == 40 and batcher.stats.runs < 40
    start = 0
    for result in results:
        rows = len(result["echo"])
        np.testing.assert_array_equal(result["echo"], np.arange(start, start + rows, dtype=np.float32))
        alone = slow_model.run(_rows(start, rows), ["heavy"])["heavy"]
        np.testing.assert_allclose(result["heavy"], alone, rtol=1e-5)  # other batch sizes may round differently
        start += rows


def test_a_waiting_request_goes_when_its_bound_expires(slow_model: RuntimeModel, busy_rows: int) -> None:
    """While a long call runs, a new request waits for company only up to max_wait, then runs beside it."""

    async def scenario() -> tuple[float, bool]:
        batcher = Batcher(slow_model, ThreadPoolExecutor(2), max_rows=10 * busy_rows, max_wait_s=0.1)
        busy = asyncio.create_task(batcher.run(_rows(0, busy_rows), busy_rows, ["heavy"]))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        result = await batcher.run(_rows(7, 1), 1, ["echo"])
        assert result["echo"].tolist() == [7.0]
        waited, busy_still_running = time.perf_counter() - started, not busy.done()
        await busy
        return waited, busy_still_running

    waited, busy_still_running = asyncio.run(scenario())
    assert 0.09 <= waited <= 0.35, waited
    assert busy_still_running


def test_a_full_batch_goes_at_once_and_zero_wait_turns_batching_off(slow_model: RuntimeModel, busy_rows: int) -> None:
    async def full_batch() -> tuple[float, bool, Batcher]:
        batcher = Batcher(slow_model, ThreadPoolExecutor(2), max_rows=4, max_wait_s=30)
        busy = asyncio.create_task(batcher.run(_rows(0, busy_rows), busy_rows, ["heavy"]))
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        results = await asyncio.gather(*(batcher.run(_rows(row, 1), 1, ["echo"]) for row in range(4)))
        assert [result["echo"].tolist() for result in results] == [[0.0], [1.0], [2.0], [3.0]]
        waited, busy_still_running = time.perf_counter() - started, not busy.done()
        await busy
        return waited, busy_still_running, batcher

    waited, busy_still_running, batcher = asyncio.run(full_batch())
    assert waited < 0.5 and busy_still_running, waited
    assert batcher.stats.runs == 2  # the long request, then the four together

    async def unbatched() -> Batcher:
        batcher = Batcher(slow_model, ThreadPoolExecutor(2), max_rows=64, max_wait_s=0)
        await asyncio.gather(*(batcher.run(_rows(row, 1), 1, ["echo"]) for row in range(10)))
        return batcher

    assert asyncio.run(unbatched()).stats.runs == 10


# --- binary tensors and value checks, in process ---


BINARY_SPECS = {
    "a": TensorSpec("a", "FP32", (-1,)),
    "b": TensorSpec("b", "FP32", (-1,)),
    "ids": TensorSpec("ids", "INT64", (-1, 2)),
    "flag": TensorSpec("flag", "BOOL", (-1,)),
    "more": TensorSpec("more", "INT64", (-1, 2)),
}


def _binary_request(arrays: dict[str, np.ndarray], pad: int = 0, sizes: dict[str, int] | None = None) -> WireRequest:
    """A binary request for `arrays`, its JSON header `pad` bytes longer (so that the tensors may sit unaligned)."""
    inputs = [
        {
            "name": name,
            "shape": list(values.shape),
            "datatype": BINARY_SPECS[name].datatype,
            "parameters": {"binary_data_size": (sizes or {}).get(name, values.nbytes)},
        }
        for name, values in arrays.items()
    ]
    header = orjson.dumps({"inputs": inputs}) + b" " * pad
    return decode_request(header + b"".join(values.tobytes() for values in arrays.values()), str(len(header)))


def test_binary_inputs_are_read_per_run_of_one_datatype_and_shape_aligned_or_not() -> None:
    arrays = {
        "a": np.array([1.5, 2.5], np.float32),
        "b": np.array([3.5, 4.5], np.float32),
        "ids": np.array([[1, 2], [3, 4]]),
        "flag": np.array([True, False]),
        "more": np.array([[5, 6], [7, 8]]),
    }
    for pad in range(8):
        request = _binary_request(arrays, pad)
        feeds = from_bytes(request.inputs, BINARY_SPECS, request.tensor_bytes)
        assert list(feeds) == list(arrays)
        for name, values in arrays.items():
            assert feeds[name].dtype == values.dtype and feeds[name].flags.aligned
            np.testing.assert_array_equal(feeds[name], values)


def test_binary_sizes_are_checked_per_input_and_booleans_per_byte() -> None:
    arrays = {"a": np.array([1.0, 2.0], np.float32), "b": np.array([3.0, 4.0], np.float32)}
    request = _binary_request(arrays, sizes={"a": 4, "b": 12})  # they add up, but each is wrong
    with pytest.raises(BadRequest, match="input 'a' has binary_data_size 4, but shape \\[2\\] of FP32 takes 8 bytes"):
        from_bytes(request.inputs, BINARY_SPECS, request.tensor_bytes)
    request = _binary_request({"flag": np.array([1, 2], np.uint8).view(np.bool_)})
    with pytest.raises(BadRequest, match="input 'flag' \\(BOOL\\) must hold bytes 0 or 1"):
        from_bytes(request.inputs, BINARY_SPECS, request.tensor_bytes)


def test_value_check_names_the_input_and_position() -> None:
    specs = [TensorSpec("x", "FP32", (-1,)), TensorSpec("u", "INT64", (-1,)), TensorSpec("v", "INT64", (-1, 2))]
    check = ValueCheck(specs, {"u": 3, "v": 5})
    good = {"x": np.array([0.5, 1.0], np.float32), "u": np.array([0, 2]), "v": np.array([[4, 0], [1, 2]])}
    check(good)
    with pytest.raises(BadRequest, match="input 'x' holds inf at position 1; values must be finite"):
        check({**good, "x": np.array([0.5, np.inf], np.float32)})
    with pytest.raises(
        BadRequest, match="input 'v' holds id 5 at position 3, outside its embedding table \\(ids 0 to 4\\)"
    ):
        check({**good, "v": np.array([[4, 0], [1, 5]])})
    with pytest.raises(BadRequest, match="input 'u' holds id -1 at position 0"):
        check({**good, "u": np.array([-1, 2])})


# --- over HTTP: a fused model from a real job ---


@pytest.fixture(scope="module")
def stack(embedded_stack: Stack) -> Stack:
    return embedded_stack


@pytest.fixture(scope="module")
def headers(stack: Stack) -> dict[str, str]:
    """The API key the stack's clients carry, for tritonclient."""
    return stack.headers


def _expected(model_path: Path, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    session = _session(model_path)
    feed = model_feeds(session.get_inputs(), rows)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feed), strict=True))


@functools.cache
def _session(model_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


def _json_inputs(model_path: Path, rows: pd.DataFrame) -> list[dict]:
    return [
        {"name": name, "shape": [len(rows)], "datatype": datatype, "data": rows[name].tolist()}
        for name, datatype in _input_types(model_path)
    ]


def _input_types(model_path: Path) -> list[tuple[str, str]]:
    return [(i.name, "INT64" if "int" in i.type else "FP32") for i in _session(model_path).get_inputs()]


def _triton_inputs(model_path: Path, rows: pd.DataFrame, binary: bool) -> list[triton.InferInput]:
    inputs = []
    for spec in _json_inputs(model_path, rows):
        values = np.asarray(spec["data"], dtype=np.int64 if spec["datatype"] == "INT64" else np.float32)
        tensor = triton.InferInput(spec["name"], list(values.shape), spec["datatype"])
        tensor.set_data_from_numpy(values, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_json_and_binary_equal_onnxruntime(
    stack: Stack, headers: dict[str, str], deployed: Path, rows: pd.DataFrame
) -> None:
    expected = _expected(deployed, rows)
    client = triton.InferenceServerClient(stack.url.removeprefix("http://"))
    try:
        assert client.is_server_live(headers=headers)
        assert "binary_tensor_data" in client.get_server_metadata(headers=headers)["extensions"]
        binary = client.infer(NAME, _triton_inputs(deployed, rows, binary=True), headers=dict(headers))
        outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in expected]
        as_json = client.infer(
            NAME,
            _triton_inputs(deployed, rows, binary=False),
            model_version="1",
            outputs=outputs,
            headers=dict(headers),
        )
        with pytest.raises(InferenceServerException, match="datatype FP64"):
            wrong = triton.InferInput("age", [len(rows)], "FP64")
            wrong.set_data_from_numpy(rows["age"].to_numpy(np.float64))
            others = [tensor for tensor in _triton_inputs(deployed, rows, binary=True) if tensor.name() != "age"]
            client.infer(NAME, [wrong, *others], headers=dict(headers))
    finally:
        client.close()
    assert as_json.get_response()["model_version"] == "1"
    for name, values in expected.items():
        assert binary.get_output(name)["parameters"]["binary_data_size"] == values.nbytes
        assert "data" in as_json.get_output(name)
        np.testing.assert_array_equal(binary.as_numpy(name), values)
        np.testing.assert_array_equal(as_json.as_numpy(name), values)


def test_concurrent_http_requests_are_batched_and_equal_per_request_runs(
    stack: Stack, deployed: Path, rows: pd.DataFrame
) -> None:
    route = f"/v1/deployments/{NAME}/versions/1"
    with stack.client() as client:
        changed = client.patch(route, json={"max_batch_size": 64, "max_batch_wait_ms": 50})
        assert changed.status_code == 200, changed.text
        assert changed.json()["effective_max_batch_size"] == 64
        before = changed.json()
    singles = [rows.iloc[[row]] for row in range(len(rows))]

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.headers, timeout=60) as client:
            calls = [
                client.post(f"/v2/models/{NAME}/infer", json={"inputs": _json_inputs(deployed, single)})
                for single in singles
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(send_all())
    assert [response.status_code for response in responses] == [200] * len(singles), responses[0].text
    with stack.client() as client:
        after = client.get(route).json()
        reset = client.patch(route, json={"max_batch_wait_ms": None, "max_batch_size": None})
    assert reset.json()["max_batch_wait_ms"] is None and reset.json()["max_batch_size"] is None
    assert after["requests"] - before["requests"] == len(singles)
    assert after["runs"] - before["runs"] < len(singles), after
    for single, response in zip(singles, responses, strict=True):
        assert response.status_code == 200, response.text
        expected = _expected(deployed, single)
        for output in response.json()["outputs"]:
            np.testing.assert_allclose(np.asarray(output["data"], np.float32), expected[output["name"]], rtol=1e-5)


def test_deployment_batching_route_checks_its_input(stack: Stack, deployed: Path) -> None:
    with stack.client() as client:
        assert client.patch(f"/v1/deployments/{NAME}/versions/1", json={"max_batch_size": 0}).status_code == 422
        assert client.patch(f"/v1/deployments/{NAME}/versions/9", json={}).status_code == 404
        assert client.get(f"/v1/deployments/{NAME}/versions/x").status_code == 404


def _binary_body(header: dict, *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    encoded = orjson.dumps(header)
    return encoded + b"".join(blobs), {"Inference-Header-Content-Length": str(len(encoded))}


def test_hostile_inference_requests_get_400_with_a_message(stack: Stack, deployed: Path, rows: pd.DataFrame) -> None:
    good = _json_inputs(deployed, rows.head(2))
    by_name = {spec["name"]: position for position, spec in enumerate(good)}
    ids = next(spec for spec in good if spec["datatype"] == "INT64")
    dense = next(spec for spec in good if spec["datatype"] == "FP32")

    def replaced(spec: dict, **changes: object) -> list[dict]:
        inputs = list(good)
        inputs[by_name[spec["name"]]] = {**spec, **changes}
        return inputs

    nan = np.array([np.nan, 1], np.float32).tobytes()
    binary_dense = {k: v for k, v in dense.items() if k != "data"} | {"parameters": {"binary_data_size": 8}}
    cases: list[tuple[str, bytes | dict, dict[str, str], str]] = [
        ("unknown input", {"inputs": [*good, {**dense, "name": "nope"}]}, {}, "unknown: ['nope']"),
        ("missing input", {"inputs": good[1:]}, {}, "missing"),
        ("twice", {"inputs": [*good, good[0]]}, {}, "given twice"),
        ("datatype", {"inputs": replaced(dense, datatype="FP64")}, {}, "the model expects FP32"),
        ("unknown datatype", {"inputs": replaced(dense, datatype="BF16")}, {}, "datatype BF16"),
        ("rank", {"inputs": replaced(dense, shape=[2, 1])}, {}, "the model expects [-1]"),
        ("negative dim", {"inputs": replaced(dense, shape=[-2])}, {}, "none negative"),
        ("count", {"inputs": replaced(dense, data=[0.1, 0.2, 0.3])}, {}, "has 3 values"),
        ("rows differ", {"inputs": replaced(dense, shape=[1], data=[0.5])}, {}, "same number of rows"),
        ("strings", {"inputs": replaced(dense, data=["a", "b"])}, {}, "must hold numbers"),
        ("jagged", {"inputs": replaced(dense, data=[[1.0], [2.0, 3.0]])}, {}, "evenly nested"),
        ("fraction id", {"inputs": replaced(ids, data=[1.5, 2])}, {}, "must hold integers"),
        ("bool id", {"inputs": replaced(ids, data=[1, False])}, {}, "not true/false"),
        ("huge id", {"inputs": replaced(ids, data=[2**63, 1])}, {}, "must hold integers"),
        ("id outside table", {"inputs": replaced(ids, data=[10**6, 0])}, {}, "outside its embedding table"),
        ("negative id", {"inputs": replaced(ids, data=[-1, 0])}, {}, "outside its embedding table"),
        ("overflow to inf", {"inputs": replaced(dense, data=[1e39, 0.0])}, {}, "must be finite"),
        ("no data", {"inputs": replaced(dense, data=None)}, {}, "needs 'data'"),
        ("no inputs", {"inputs": []}, {}, "non-empty list"),
        ("not an object", b"[1, 2]", {}, "JSON object"),
        ("not JSON", b"{inputs: nope", {}, "not valid JSON"),
        ("NaN literal", b'{"inputs": [{"name": "age", "shape": [1], "datatype": "FP32", "data": [NaN]}]}', {}, "JSON"),
        ("unknown output", {"inputs": good, "outputs": [{"name": "nope"}]}, {}, "unknown output"),
        ("bad flag", {"inputs": good, "parameters": {"binary_data_output": "yes"}}, {}, "true or false"),
        ("compressed", {"inputs": good}, {"Content-Encoding": "gzip"}, "must not be compressed"),
        ("binary NaN", _binary_body({"inputs": _with(good, binary_dense)}, nan), {}, "finite"),
        ("binary short", _binary_body({"inputs": _with(good, binary_dense)}, nan[:6]), {}, "only 6 bytes"),
        ("binary extra", _binary_body({"inputs": _with(good, binary_dense)}, nan, b"xx"), {}, "add up to 8"),
        (
            "binary size vs shape",
            _binary_body({"inputs": _with(good, {**binary_dense, "parameters": {"binary_data_size": 4}})}, nan[:4]),
            {},
            "takes 8 bytes",
        ),
        ("binary without header", {"inputs": _with(good, binary_dense)}, {}, "no Inference-Header-Content-Length"),
        ("header length", orjson.dumps({"inputs": good}), {"Inference-Header-Content-Length": "x"}, "whole number"),
        ("header too long", orjson.dumps({"inputs": good}), {"Inference-Header-Content-Length": "99999"}, "1 to"),
    ]
    with stack.client() as client:
        for label, body, extra, message in cases:
            if isinstance(body, tuple):
                body, extra = body
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            response = client.post(f"/v2/models/{NAME}/infer", content=content, headers=extra)
            assert response.status_code == 400, (label, response.status_code, response.text)
            assert message in response.json()["error"], (label, response.json())
        too_many = [{**spec, "shape": [10**9]} for spec in good]
        response = client.post(f"/v2/models/{NAME}/infer", json={"inputs": too_many})
        assert response.status_code == 413 and "limit" in response.json()["error"]


def _with(inputs: list[dict], replacement: dict) -> list[dict]:
    return [replacement if spec["name"] == replacement["name"] else spec for spec in inputs]
