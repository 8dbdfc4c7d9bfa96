"""Running ONNX models with ONNX Runtime, optionally exposing inner tensors as extra outputs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
import onnxruntime as ort

CHUNK_ROWS = 65_536


def providers() -> list[str]:
    """CUDA first where ONNX Runtime has it, then the CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or int(os.environ.get("FUSEBOX_ORT_THREADS", "0"))
    options.log_severity_level = 3
    return options


def with_outputs(model: onnx.ModelProto, tensors: Iterable[str]) -> onnx.ModelProto:
    """A copy of `model` that also outputs the named inner tensors."""
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    existing = {output.name for output in extended.graph.output}
    inferred = onnx.shape_inference.infer_shapes(extended, strict_mode=False).graph
    known = {value.name: value for value in [*inferred.value_info, *inferred.input, *inferred.output]}
    for name in dict.fromkeys(tensors):
        if name in existing:
            continue
        if name in known:
            extended.graph.output.append(known[name])
        else:
            extended.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return extended


def create_session(model: onnx.ModelProto, threads: int | None = None) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), session_options(threads), providers=providers())


def run_session(
    session: ort.InferenceSession, feed: Mapping[str, np.ndarray], outputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run in chunks of CHUNK_ROWS rows and concatenate, so memory stays bounded on large inputs."""
    names = outputs or [output.name for output in session.get_outputs()]
    rows = len(next(iter(feed.values())))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, max(rows, 1), CHUNK_ROWS):
        chunk = {name: values[start : start + CHUNK_ROWS] for name, values in feed.items()}
        for name, value in zip(names, session.run(names, chunk), strict=True):
            parts[name].append(value)
    return {name: np.concatenate(values) if len(values) > 1 else values[0] for name, values in parts.items()}


def run_model(
    model: onnx.ModelProto, feed: Mapping[str, np.ndarray], extra_outputs: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Run a model once (graph outputs plus `extra_outputs`), without keeping the session."""
    extra = list(extra_outputs)
    session = create_session(with_outputs(model, extra) if extra else model)
    return run_session(session, feed)
