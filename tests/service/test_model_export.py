"""A deployment exported for Triton and KServe: config.pbtxt read by Triton's own ModelConfig protobuf
(tritonclient's model_config_pb2), matching the ONNX graph it ships with; the archive's model answering
like the served one; the KServe manifest; the CLI and the client."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import yaml
from google.protobuf import text_format
from onnx import TensorProto, helper
from tritonclient.grpc import model_config_pb2

from fusion.onnx_runtime import model_feeds
from service.client import FuseboxClient
from service.deployments.export import STORAGE_URI_PLACEHOLDER, kserve_manifest, triton_config
from service.deployments.models import Deployment
from tests.helpers.cli_job import fusebox
from tests.helpers.jobs import CENSUS_JOB, CensusJob
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles

NAME = CENSUS_JOB

# --- the files themselves, from small graphs ---


def _graph(first_dim: str | int = "batch") -> onnx.ModelProto:
    """Inputs of each kind a fused model has (one value per row, FP32 and INT64; several per row), and
    outputs one per row and several per row; the body only has to make the graph valid."""
    inputs = [
        helper.make_tensor_value_info("age", TensorProto.FLOAT, [first_dim]),
        helper.make_tensor_value_info("education", TensorProto.INT64, [first_dim]),
        helper.make_tensor_value_info("wide", TensorProto.FLOAT, [first_dim, 3]),
    ]
    outputs = [
        helper.make_tensor_value_info("income", TensorProto.FLOAT, [first_dim]),
        helper.make_tensor_value_info("classes", TensorProto.FLOAT, [first_dim, 3]),
    ]
    nodes = [
        helper.make_node("Identity", ["age"], ["income"]),
        helper.make_node("Identity", ["wide"], ["classes"]),
        helper.make_node("Identity", ["education"], ["unused"]),
    ]
    return helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 17)]
    )


def _parsed(config: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(config, model_config_pb2.ModelConfig())


def _dims(tensor: model_config_pb2.ModelInput | model_config_pb2.ModelOutput) -> tuple[list[int], list[int] | None]:
    return list(tensor.dims), list(tensor.reshape.shape) if tensor.HasField("reshape") else None


def test_triton_config_parses_into_model_config_with_the_graphs_tensors() -> None:
    config = _parsed(triton_config("census", 3, _graph(), max_batch_size=256, max_wait_ms=2.5))
    assert config.name == "census" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 256
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500
    assert list(config.version_policy.specific.versions) == [3]
    fp32, int64 = model_config_pb2.DataType.TYPE_FP32, model_config_pb2.DataType.TYPE_INT64
    inputs = {tensor.name: (tensor.data_type, *_dims(tensor)) for tensor in config.input}
    assert inputs == {"age": (fp32, [1], []), "education": (int64, [1], []), "wide": (fp32, [3], None)}
    outputs = {tensor.name: (tensor.data_type, *_dims(tensor)) for tensor in config.output}
    assert outputs == {"income": (fp32, [1], []), "classes": (fp32, [3], None)}


def test_triton_config_without_batching_and_without_a_batch_axis() -> None:
    unbatched = _parsed(triton_config("m", 1, _graph(), max_batch_size=64, max_wait_ms=0))
    assert unbatched.max_batch_size == 64 and not unbatched.HasField("dynamic_batching")
    fixed = _parsed(triton_config("m", 1, _graph(first_dim=8), max_batch_size=64, max_wait_ms=2))
    assert fixed.max_batch_size == 0 and not fixed.HasField("dynamic_batching")
    assert {tensor.name: list(tensor.dims) for tensor in fixed.input} == {"age": [8], "education": [8], "wide": [8, 3]}


def test_kserve_manifest_is_an_onnx_inference_service_on_protocol_v2() -> None:
    deployment = Deployment(name="Census_Income.b", version=3)
    manifest = yaml.safe_load(kserve_manifest(deployment, None))
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "census-income-b-v3"  # a DNS-1123 label, as Kubernetes wants
    assert manifest["metadata"]["annotations"] == {"fusebox/deployment": "Census_Income.b", "fusebox/version": "3"}
    model = manifest["spec"]["predictor"]["model"]
    assert model == {"modelFormat": {"name": "onnx"}, "protocolVersion": "v2", "storageUri": STORAGE_URI_PLACEHOLDER}
    given = yaml.safe_load(kserve_manifest(deployment, "gs://bucket/census"))
    assert given["spec"]["predictor"]["model"]["storageUri"] == "gs://bucket/census"


# --- against the live service, with the shared Census deployment ---


@pytest.fixture(scope="module")
def stack(embedded_stack: Stack) -> Stack:
    return embedded_stack


@pytest.fixture(scope="module")
def repository(stack: Stack, census_job: CensusJob, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployment's Triton archive, unpacked."""
    folder = tmp_path_factory.mktemp("triton")
    with stack.client() as client:
        answer = client.get(f"/v1/deployments/{NAME}/versions/1/triton")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/gzip"
    assert f'filename="{NAME}-v1-triton.tar.gz"' in answer.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        files = sorted(member.name for member in archive.getmembers() if member.isfile())
        assert files == [f"{NAME}/1/model.onnx", f"{NAME}/config.pbtxt"]
        archive.extractall(folder, filter="data")
    return folder


def test_triton_repository_holds_the_served_model_and_its_tensors(
    stack: Stack, census_job: CensusJob, repository: Path
) -> None:
    model_file = repository / NAME / "1" / "model.onnx"
    with stack.client() as client:
        served = client.get(f"/v1/fusion-jobs/{census_job.job['id']}/model").content
        batching = client.get(f"/v1/deployments/{NAME}/versions/1").json()
    assert model_file.read_bytes() == served
    config = _parsed((repository / NAME / "config.pbtxt").read_text())
    assert config.name == NAME and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == batching["effective_max_batch_size"]
    wait_us = round(batching["effective_max_batch_wait_ms"] * 1000)
    assert config.dynamic_batching.max_queue_delay_microseconds == wait_us
    graph = onnx.load(str(model_file)).graph
    for declared, actual in ((config.input, graph.input), (config.output, graph.output)):
        expected = {value.name: _triton_view(value) for value in actual}
        assert {tensor.name: (tensor.data_type, *_dims(tensor)) for tensor in declared} == expected


def _triton_view(value: onnx.ValueInfoProto) -> tuple[int, list[int], list[int] | None]:
    """What config.pbtxt must say of an ONNX tensor that leads with the batch axis."""
    tensor_type = value.type.tensor_type
    kind = {TensorProto.FLOAT: "TYPE_FP32", TensorProto.INT64: "TYPE_INT64"}[tensor_type.elem_type]
    dims = [dim.dim_value for dim in tensor_type.shape.dim]
    assert dims[0] == 0  # the batch axis has no fixed size
    return model_config_pb2.DataType.Value(kind), dims[1:] or [1], None if dims[1:] else []


def test_the_archives_model_answers_like_the_served_one(stack: Stack, repository: Path, data_files: DataFiles) -> None:
    rows = pd.read_csv(data_files.validation).head(40)
    session = ort.InferenceSession(str(repository / NAME / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    answers = session.run(None, model_feeds(session.get_inputs(), rows))
    local = dict(zip([output.name for output in session.get_outputs()], answers, strict=True))
    inputs = [
        {
            "name": spec.name,
            "shape": [len(rows)],
            "datatype": "INT64" if "int64" in spec.type else "FP32",
            "data": rows[spec.name].tolist(),
        }
        for spec in session.get_inputs()
    ]
    with FuseboxClient(stack.url, stack.api_key) as client:
        answer = client.infer(NAME, inputs, version=1)
    assert {output.name for output in answer.outputs} == set(local)
    for output in answer.outputs:
        np.testing.assert_allclose(np.asarray(output.data, np.float32), local[output.name].reshape(-1), atol=1e-6)


def test_kserve_route_and_its_refusals(stack: Stack, census_job: CensusJob) -> None:
    with stack.client() as client:
        answer = client.get(f"/v1/deployments/{NAME}/versions/1/kserve", params={"storage_uri": "s3://models/census"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("application/yaml")
        manifest = yaml.safe_load(answer.text)
        assert manifest["spec"]["predictor"]["model"]["storageUri"] == "s3://models/census"
        assert manifest["metadata"]["name"] == f"{NAME}-v1"
        bad_uri = client.get(f"/v1/deployments/{NAME}/versions/1/kserve", params={"storage_uri": "s3://a b"})
        assert bad_uri.status_code == 422, bad_uri.text
        for route in ("triton", "kserve"):
            missing = client.get(f"/v1/deployments/{NAME}/versions/99/{route}")
            assert missing.status_code == 404 and "is not deployed" in missing.text
    stranger = {"Authorization": f"Bearer {stack.new_tenant('export')}"}
    with stack.client() as client:
        assert client.get(f"/v1/deployments/{NAME}/versions/1/triton", headers=stranger).status_code == 404


def test_cli_exports_for_triton_and_kserve(stack: Stack, census_job: CensusJob, tmp_path: Path) -> None:
    archive, manifest = tmp_path / "census.tar.gz", tmp_path / "census.yaml"
    triton = fusebox(stack, "deployments", "export", NAME, "--format", "triton", "--out", str(archive))
    assert triton.returncode == 0, triton.stderr
    assert f"saved {NAME} version 1 for triton" in triton.stdout and "--model-repository" in triton.stdout
    with tarfile.open(archive) as opened:
        assert f"{NAME}/config.pbtxt" in opened.getnames()
    kserve = fusebox(
        stack, "deployments", "export", NAME, "--version", "1", "--format", "kserve", "--out", str(manifest),
        "--storage-uri", "pvc://models/census",
    )  # fmt: skip
    assert kserve.returncode == 0, kserve.stderr
    assert yaml.safe_load(manifest.read_text())["spec"]["predictor"]["model"]["storageUri"] == "pvc://models/census"
    missing = fusebox(stack, "deployments", "export", "nothing-here")
    assert missing.returncode == 1 and missing.stderr.strip().endswith(
        "not found: no deployment is named 'nothing-here'"
    )
