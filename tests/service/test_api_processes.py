"""Several API processes behind one port (FUSEBOX_API_WORKERS=2): HTTP and gRPC requests spread over both,
each answering from its own ONNX Runtime sessions, and /metrics, whichever process answers it, counts every
request of both exactly once (Prometheus multiprocess mode); a new start begins the counts at zero."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.helpers.jobs import CENSUS_JOB
from tests.helpers.served import feeds_and_expected, grpc_inputs, metric_total
from tests.helpers.stacks import Stack, start_stack
from tests.helpers.uploads import DataFiles

NAME = CENSUS_JOB
BODY_LIMIT = 2**20


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = {"FUSEBOX_API_WORKERS": "2", "FUSEBOX_INFERENCE_MAX_BODY_BYTES": str(BODY_LIMIT)}
    with start_stack(tmp_path_factory.mktemp("two-api-processes"), settings=settings) as stack:
        yield stack


@pytest.fixture(scope="module")
def rows(data_files: DataFiles) -> pd.DataFrame:
    return pd.read_csv(data_files.validation).head(3)


def _metrics_dir(stack: Stack) -> Path:
    return Path(stack.env["FUSEBOX_VAR_DIR"]) / "prometheus"


def _per_process(stack: Stack, sample: str, **labels: str) -> dict[int, float]:
    """The sample's total in each process's own files (prometheus_client names them *_<pid>.db)."""
    totals: dict[int, float] = {}
    for path in _metrics_dir(stack).glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            text = generate_latest(registry).decode()
        totals[int(path.stem.rsplit("_", 1)[1])] = metric_total(text, sample, **labels)
    return totals


def _answered_by_both(stack: Stack) -> bool:
    http = _per_process(stack, "fusebox_http_requests_total", route="/v2/models/{name}/infer", status="200")
    over_grpc = _per_process(stack, "fusebox_grpc_requests_total", method="ModelInfer", code="OK")
    return sum(count > 0 for count in http.values()) == 2 and sum(count > 0 for count in over_grpc.values()) == 2


def test_requests_spread_over_both_processes_and_metrics_add_up(
    stack: Stack, deployed: Path, rows: pd.DataFrame
) -> None:
    feeds, expected = feeds_and_expected(deployed, rows)
    body = {
        "inputs": [
            {"name": name, "shape": list(values.shape), "datatype": "INT64" if values.dtype == np.int64 else "FP32",
             "data": values.tolist()}
            for name, values in feeds.items()
        ]
    }  # fmt: skip
    auth = {"authorization": f"Bearer {stack.api_key}"}
    http_calls = grpc_calls = 0
    deadline = time.monotonic() + 300
    while not (http_calls and _answered_by_both(stack)):
        assert time.monotonic() < deadline, (_per_process(stack, "fusebox_inference_rows_total"), stack.logs())
        for _ in range(4):
            with stack.client() as client:  # a connection of its own: the processes take turns accepting
                answer = client.post(f"/v2/models/{NAME}/infer", json=body)
            assert answer.status_code == 200, answer.text
            http_calls += 1
            # A channel of its own too (grpcio shares connections between channels unless told not to); each
            # process listens on the port, and the kernel picks one per connection.
            client = triton_grpc.InferenceServerClient(
                stack.grpc_target, channel_args=[("grpc.use_local_subchannel_pool", 1)]
            )
            try:
                result = client.infer(NAME, grpc_inputs(feeds), headers=auth)
            finally:
                client.close()
            grpc_calls += 1
            for name, values in expected.items():
                np.testing.assert_allclose(result.as_numpy(name), values, rtol=1e-5)
    with stack.client() as client:
        metrics = client.get("/metrics").text
    rows_sent = (http_calls + grpc_calls) * len(rows)
    assert metric_total(metrics, "fusebox_inference_rows_total", model=NAME) == rows_sent
    assert sum(_per_process(stack, "fusebox_inference_rows_total", model=NAME).values()) == rows_sent
    assert metric_total(metrics, "fusebox_grpc_requests_total", method="ModelInfer", code="OK") == grpc_calls
    infer_route = {"route": "/v2/models/{name}/infer", "status": "200"}
    assert metric_total(metrics, "fusebox_http_requests_total", **infer_route) == http_calls
    assert metric_total(metrics, "fusebox_inference_duration_seconds_count", model=NAME) == http_calls + grpc_calls


def test_oversize_requests_are_refused_over_http_and_grpc(stack: Stack) -> None:
    """The same limit on both protocols (FUSEBOX_INFERENCE_MAX_BODY_BYTES); gRPC refuses before decoding."""
    request = service_pb2.ModelInferRequest(model_name=NAME, raw_input_contents=[bytes(BODY_LIMIT + 1)])
    request.inputs.add(name="age", datatype="FP32", shape=[(BODY_LIMIT + 1) // 4])
    with grpc.insecure_channel(stack.grpc_target) as channel, pytest.raises(grpc.RpcError) as refused:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=(("authorization", f"Bearer {stack.api_key}"),)
        )
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
    assert str(BODY_LIMIT) in refused.value.details()
    with stack.client() as client:
        answer = client.post(f"/v2/models/{NAME}/infer", content=bytes(BODY_LIMIT + 1))
    assert answer.status_code == 413, answer.text


def test_a_new_start_counts_from_zero(stack: Stack) -> None:
    with stack.client() as client:
        assert metric_total(client.get("/metrics").text, "fusebox_http_requests_total") > 0
    old = {path.name for path in _metrics_dir(stack).glob("*.db")}
    stack.restart_api()
    with stack.client() as client:
        metrics = client.get("/metrics").text
    assert metric_total(metrics, "fusebox_inference_rows_total") == 0
    assert metric_total(metrics, "fusebox_grpc_requests_total") == 0
    assert old and not old & {path.name for path in _metrics_dir(stack).glob("*.db")}
