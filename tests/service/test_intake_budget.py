"""Model uploads that ask for far more than they carry, over HTTP on the real stack: refused with 422 from
the intake budget, the API's peak memory barely moving, nothing stored. A large weights file: accepted
without the API holding copies of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import onnx
import pytest

from tests.helpers.amplifiers import chained_matmuls, constant_of_shape_bomb, external_mlp
from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack

PEAK_GROWTH_LIMIT = 200 * 2**20


@pytest.fixture(scope="module")
def client(pg_stack: Stack) -> Iterator[httpx.Client]:
    with pg_stack.client() as client:
        yield client


def peak_resident_bytes(stack: Stack) -> int:
    """The API process's highest resident memory so far (VmHWM)."""
    status = Path(f"/proc/{stack.processes['api'].pid}/status").read_text()
    return 1024 * int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))


def reset_peak(stack: Stack) -> None:
    """Start the peak afresh from the current resident memory (Linux: 5 > clear_refs), so an earlier test's
    peak does not hide this one's."""
    Path(f"/proc/{stack.processes['api'].pid}/clear_refs").write_text("5")


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (constant_of_shape_bomb(), ["'bomb'", "ConstantOfShape", "[20000, 20000]", "max_constant_tensor_bytes"]),
        (chained_matmuls(), ["'link0' (MatMul", "floating-point operations", "FUSEBOX_MAX_FLOPS_PER_ROW"]),
    ],
    ids=["constant_of_shape_20000x20000", "forty_3000x3000_matmuls"],
)
def test_an_amplifying_model_is_refused_with_422(
    pg_stack: Stack, client: httpx.Client, model: onnx.ModelProto, words: list[str]
) -> None:
    content = model.SerializeToString()
    assert len(content) < 1500
    reset_peak(pg_stack)
    before = peak_resident_bytes(pg_stack)
    with nothing_stored(pg_stack, client):
        response = client.post(
            "/v1/models", files={"file": ("small.onnx", content)}, data={"name": "amplifier", "task": "income"}
        )
        refused(response, 422, *words)
    growth = peak_resident_bytes(pg_stack) - before
    assert growth < PEAK_GROWTH_LIMIT, f"the API's peak memory grew by {growth / 2**20:.0f} MiB"
    assert client.get("/v2/health/live").status_code == 200


def test_a_large_weights_file_is_stored_without_being_held_in_memory(
    pg_stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    """64 MiB of weights beside a small graph: accepted, stored self-contained, and the API's peak memory
    grows by less than the weights (the probe maps them in a child process, the stored model is written
    from the file in chunks; before, intake held four to six copies)."""
    content, weights, _ = external_mlp(tmp_path, 4096)
    reset_peak(pg_stack)
    before_files, before = pg_stack.stored_files(), peak_resident_bytes(pg_stack)
    with weights.open("rb") as handle:
        response = client.post(
            "/v1/models",
            files={"file": ("model.onnx", content), "weights": ("model.onnx.data", handle)},
            data={"name": "heavy", "task": "income"},
        )
    assert response.status_code == 201, response.text
    growth = peak_resident_bytes(pg_stack) - before
    assert growth < weights.stat().st_size, f"the API's peak memory grew by {growth / 2**20:.0f} MiB"
    (stored,) = {path for path in pg_stack.stored_files() - before_files if "sha256" in path.parts}
    model = onnx.load(str(stored))
    assert model.graph.initializer[-1].name == "w" and len(model.graph.initializer[-1].raw_data) == 4096 * 4096 * 4
    client.delete(f"/v1/models/{response.json()['id']}")
