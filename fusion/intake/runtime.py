"""The last word on validity: the ONNX checker with strict shape inference, then ONNX Runtime itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from fusion.intake import isolated_probe
from fusion.intake.isolated_probe import run_session
from fusion.intake.records import InputSpec, ModelRejected
from fusion.intake.signature import Dims, dims_of
from fusion.intake.weights import WeightsFile, runtime_model, without_external_data

_PROBE_ROWS = 2
_CHILD_TIMEOUT_S = 300
_ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |\S+\.(?:h|cc|cpp):\d+ |[\w:]+::\w+\([^)]*\) ")
"""ONNX Runtime's error code prefix, source locations and C++ signatures: noise to a user."""


def _short(message: str, limit: int = 400) -> str:
    text = _ORT_NOISE.sub("", " ".join(message.split()))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_and_infer_shapes(model: onnx.ModelProto) -> dict[str, Dims]:
    """Run the checker, then strict, type-checked shape inference; return every known tensor shape.

    Together these are what check_model(full_check=True) does, but the inferred shapes are kept: the
    score's shape and the id inputs' paths need them, and full_check would discard them.
    """
    checked = without_external_data(model)
    try:
        onnx.checker.check_model(checked)
        inferred = onnx.shape_inference.infer_shapes(checked, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ModelRejected(
            f"The model is not a valid ONNX graph: {_short(str(error))}. Re-export it with a current "
            "exporter and check it with onnx.checker.check_model(model, full_check=True)."
        ) from None
    return known_shapes(inferred.graph)


def known_shapes(graph: onnx.GraphProto) -> dict[str, Dims]:
    """Every tensor shape a (shape-inferred) graph declares: initializers, inputs, values, outputs."""
    shapes = {t.name: tuple(t.dims) for t in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        dims = dims_of(value)
        if dims is not None:
            shapes[value.name] = dims
    return shapes


def probe(
    model: onnx.ModelProto, inputs: tuple[InputSpec, ...], output_width: int, weights: WeightsFile | None = None
) -> None:
    """Load the model in ONNX Runtime and run a batch of zeros; the output must be one score per row.

    `inputs` are the model's checked feature inputs. Zeros are valid for every input, ids included. One
    thread: this runs inside the API process; a model with weights still in their file runs in a child
    process (fusion/intake/isolated_probe.py), which maps the file.
    """
    feeds = {
        spec.name: np.zeros((_PROBE_ROWS, spec.width) if spec.rank == 2 else (_PROBE_ROWS,), dtype=spec.dtype)
        for spec in inputs
    }
    output = model.graph.output[0].name
    try:
        with runtime_model(model, weights) as (content, folder):
            if folder is None:
                shape = run_session(content, None, feeds, output)
            else:
                shape = _run_in_child(content, folder, feeds, output)
    except Exception as error:  # onnxruntime raises pybind classes with no common base besides Exception
        raise ModelRejected(
            f"ONNX Runtime could not run the model: {_short(str(error))}. Check that the model runs in "
            "onnxruntime.InferenceSession on CPU with a batch of 2 rows, fix what it reports and re-export."
        ) from None
    expected = [_PROBE_ROWS] if output_width == 1 else [_PROBE_ROWS, output_width]
    if shape != expected:
        raise ModelRejected(
            f"On a batch of {_PROBE_ROWS} rows the model returned shape {shape} instead of "
            f"{expected}; the score must have one value (or one row of class scores) per input row. "
            "Make the output follow the batch dimension and re-export."
        )


def _run_in_child(content: bytes, folder: str, feeds: dict[str, np.ndarray], output: str) -> list[int]:
    with tempfile.TemporaryDirectory(prefix="fusebox-probe-") as scratch:
        model_path, request_path = Path(scratch) / "model.onnx", Path(scratch) / "request.json"
        model_path.write_bytes(content)
        shapes = [
            {"name": name, "shape": list(array.shape), "dtype": str(array.dtype)} for name, array in feeds.items()
        ]
        request = {"model": str(model_path), "folder": folder, "feeds": shapes, "output": output}
        request_path.write_text(json.dumps(request))
        try:
            done = subprocess.run(
                # -I: the script's folder (fusion/intake) is not put on sys.path, where its modules could
                # shadow others by name.
                [sys.executable, "-I", isolated_probe.__file__, str(request_path)],
                capture_output=True,
                text=True,
                timeout=_CHILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the run took longer than {_CHILD_TIMEOUT_S} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"the probe process ended with code {done.returncode}: {done.stderr.strip()[-300:]}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise RuntimeError(answer["error"])
    return [int(size) for size in answer["shape"]]
