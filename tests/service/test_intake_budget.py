"""Model uploads that ask for far more than they carry, over HTTP on the real stack: refused with 422 from
the intake budget, the API's peak memory barely moving, nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import onnx
import pytest

from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack
from tests.test_intake_budget import chained_matmuls, constant_of_shape_bomb

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
