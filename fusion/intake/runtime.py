"""The last word on validity: the ONNX checker with strict shape inference, then ONNX Runtime itself."""

from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort

from fusion.intake.records import InputSpec, ModelRejected
from fusion.intake.signature import Dims, dims_of
from fusion.intake.weights import WeightsFile, runtime_model, without_external_data

_PROBE_ROWS = 2
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
    thread: this runs inside the API process. Initializers still in the weights file are mapped by ONNX
    Runtime from there, and not pre-packed (a copy of every weight matrix), so memory stays with the page
    cache.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4  # failures are reported in the rejection, not logged
    options.add_session_config_entry("session.disable_prepacking", "1")
    feeds = {
        spec.name: np.zeros((_PROBE_ROWS, spec.width) if spec.rank == 2 else (_PROBE_ROWS,), dtype=spec.dtype)
        for spec in inputs
    }
    try:
        with runtime_model(model, weights) as (content, folder):
            if folder is not None:
                options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
            session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
            (result,) = session.run([model.graph.output[0].name], feeds)
            del session  # unmaps the weights file before its folder may go
    except Exception as error:  # onnxruntime raises pybind classes with no common base besides Exception
        raise ModelRejected(
            f"ONNX Runtime could not run the model: {_short(str(error))}. Check that the model runs in "
            "onnxruntime.InferenceSession on CPU with a batch of 2 rows, fix what it reports and re-export."
        ) from None
    expected = (_PROBE_ROWS,) if output_width == 1 else (_PROBE_ROWS, output_width)
    if tuple(result.shape) != expected:
        raise ModelRejected(
            f"On a batch of {_PROBE_ROWS} rows the model returned shape {list(result.shape)} instead of "
            f"{list(expected)}; the score must have one value (or one row of class scores) per input row. "
            "Make the output follow the batch dimension and re-export."
        )
