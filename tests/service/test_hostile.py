"""Hostile and broken uploads over HTTP: each gets a 4xx whose message says what to change, the service
keeps answering, and nothing is stored. (Inference requests: tests/service/test_serving.py; job specs
with labels or ids that do not fit: tests/service/test_validation.py.)"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper

from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack
from tests.helpers.uploads import SourceFile


@pytest.fixture(scope="module")
def client(pg_stack: Stack) -> Iterator[httpx.Client]:
    with pg_stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def one_file_model(source_files: list[SourceFile]) -> onnx.ModelProto:
    """A real trained model whose weights are inside the .onnx file."""
    source = next(source for source in source_files if source.weights is None)
    return onnx.load_from_string(source.path.read_bytes())


def send_model(client: httpx.Client, content: bytes, filename: str = "model.onnx") -> httpx.Response:
    files = {"file": (filename, content)}
    return client.post("/v1/models", files=files, data={"name": "hostile", "task": "income"})


def send_table(client: httpx.Client, content: bytes, filename: str) -> httpx.Response:
    return client.post("/v1/datasets", files={"file": (filename, content)})


def parquet_bytes(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def largest_initializer(model: onnx.ModelProto) -> onnx.TensorProto:
    return max(model.graph.initializer, key=lambda tensor: len(tensor.raw_data))


class TestModels:
    def test_external_data_pointing_outside_the_upload(
        self, pg_stack: Stack, client: httpx.Client, one_file_model: onnx.ModelProto
    ) -> None:
        model = onnx.ModelProto.FromString(one_file_model.SerializeToString())
        tensor = largest_initializer(model)
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="/etc/passwd")
        with nothing_stored(pg_stack, client):
            refused(send_model(client, model.SerializeToString()), 422, "/etc/passwd", "onnx.save")

    def test_a_huge_declared_tensor(
        self, pg_stack: Stack, client: httpx.Client, one_file_model: onnx.ModelProto
    ) -> None:
        model = onnx.ModelProto.FromString(one_file_model.SerializeToString())
        tensor = largest_initializer(model)
        tensor.dims[:] = [1_000_000, 1_000_000]  # 4 TB declared, a few KB present
        with nothing_stored(pg_stack, client):
            response = send_model(client, model.SerializeToString())
        refused(response, 422, tensor.name)

    def test_a_cyclic_graph(self, pg_stack: Stack, client: httpx.Client) -> None:
        graph = helper.make_graph(
            [helper.make_node("Relu", ["x_and_y"], ["y"]), helper.make_node("Add", ["x", "y"], ["x_and_y"])],
            "cycle",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        with nothing_stored(pg_stack, client):
            refused(send_model(client, model.SerializeToString()), 422, "cycle")

    @pytest.mark.parametrize("cut", [0.5, 0.9])
    def test_a_truncated_file(
        self, pg_stack: Stack, client: httpx.Client, one_file_model: onnx.ModelProto, cut: float
    ) -> None:
        content = one_file_model.SerializeToString()
        with nothing_stored(pg_stack, client):
            response = send_model(client, content[: int(len(content) * cut)])
        assert response.status_code == 422, response.text
        assert "onnx" in response.json()["detail"].lower()

    @pytest.mark.parametrize(
        "content", [b"\x00" * 4096, np.random.default_rng(0).bytes(65536), b"<html>not a model</html>"]
    )
    def test_bytes_that_are_not_onnx(self, pg_stack: Stack, client: httpx.Client, content: bytes) -> None:
        with nothing_stored(pg_stack, client):
            response = send_model(client, content)
        assert response.status_code == 422, response.text
        assert "onnx" in response.json()["detail"].lower()


class TestTables:
    def test_hundreds_of_thousands_of_columns(self, pg_stack: Stack, client: httpx.Client) -> None:
        columns = 400_000
        header = ",".join(np.base_repr(i, 36) for i in range(columns)).encode()
        with nothing_stored(pg_stack, client):
            response = send_table(client, header + b"\n" + b"1," * (columns - 1) + b"1\n", "wide.csv")
        refused(response, 422, f"{columns:,} columns", "at most")

    def test_a_parquet_file_that_unpacks_to_billions_of_values(self, pg_stack: Stack, client: httpx.Client) -> None:
        # 60 columns (the test limit) of zeros: a few hundred KB compressed, 4.8 GB as float64; refused from
        # its footer, over the stack's row limit.
        rows = 10_000_000
        zeros = pa.array(np.zeros(rows, dtype=np.int8))
        table = pa.table({f"c{i}": zeros for i in range(60)})
        content = parquet_bytes(table)
        assert len(content) < 4 * 2**20
        with nothing_stored(pg_stack, client):
            response = send_table(client, content, "bomb.parquet")
        refused(response, 422, "more than 1,000,000 rows", "FUSEBOX_MAX_DATASET_ROWS")

    def test_nested_parquet_columns(self, pg_stack: Stack, client: httpx.Client) -> None:
        table = pa.table({"x": [1.0, 2.0], "tags": [[1, 2], [3]]})
        with nothing_stored(pg_stack, client):
            refused(send_table(client, parquet_bytes(table), "nested.parquet"), 422, "'tags'", "not numeric", "nested")

    @pytest.mark.parametrize(
        ("content", "words"),
        [
            ("a,b\n1,2\n".encode("utf-16"), ["not UTF-8"]),
            (b"a,b\n1,2,3\n4,5\n", ["more fields than the header's 2 columns"]),
            (b"a," + b"x" * 300_000 + b"\n1,2\n", ["could not be parsed"]),
            (b"a,b\n1,nan\n2,3\n", ["'b'", "missing value"]),
            (b"a,b\n1,-inf\n2,3\n", ["'b'", "infinite"]),
            (b"a,b\n1,1e999\n2,3\n", ["'b'", "infinite"]),
            (b",b\n1,2\n", ["no name"]),
        ],
        ids=["utf-16", "ragged rows", "huge field", "nan", "minus infinity", "overflow", "blank name"],
    )
    def test_unusable_csv(self, pg_stack: Stack, client: httpx.Client, content: bytes, words: list[str]) -> None:
        with nothing_stored(pg_stack, client):
            refused(send_table(client, content, "table.csv"), 422, *words)

    def test_the_service_still_answers(self, client: httpx.Client) -> None:
        assert client.get("/v2/health/ready").json() == {"ready": True}
