"""Running ONNX models with ONNX Runtime, optionally exposing inner tensors as extra outputs."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort

from fusion.cpus import usable_cpus

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 16_384
"""Rows per ONNX Runtime call: large enough to amortise the call, small enough that its buffers stay
cheap to allocate (64k-row chunks ran 2.5x slower here)."""


def providers() -> list[str]:
    """CUDA first where ONNX Runtime has it, then the CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """At most `threads`, FUSEBOX_ORT_THREADS and the CPUs this process may use (fusion/cpus.py), none
    of them spinning: ONNX Runtime would otherwise start one spinning thread per core of the host, and
    spinning threads lose their time slices to each other when the CPUs are shared."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = usable_cpus(threads, int(os.environ.get("FUSEBOX_ORT_THREADS") or 0))
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
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


def model_feeds(inputs: Iterable[ort.NodeArg], rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The model's inputs from the data columns of the same names, in the dtypes the model takes: to run an
    exported model (one column per input) on rows of a dataset."""
    return {i.name: rows[i.name].to_numpy(np.int64 if "int" in i.type else np.float32) for i in inputs}


def run_session(
    session: ort.InferenceSession, feed: Mapping[str, np.ndarray], outputs: list[str] | None = None
) -> dict[str, np.ndarray]:
    """Run in chunks of CHUNK_ROWS rows. Outputs are written straight into arrays allocated once for
    all rows (ONNX Runtime's I/O binding): allocating and concatenating per chunk cost more than the
    model itself on large inputs."""
    names = outputs or [output.name for output in session.get_outputs()]
    rows = len(next(iter(feed.values())))
    first = dict(zip(names, session.run(names, _rows(feed, 0)), strict=True))
    if rows <= CHUNK_ROWS or any(value.ndim == 0 or len(value) != CHUNK_ROWS for value in first.values()):
        return first if rows <= CHUNK_ROWS else _run_concatenated(session, feed, names, first)
    results = {name: np.empty((rows, *value.shape[1:]), dtype=value.dtype) for name, value in first.items()}
    for name, value in first.items():
        results[name][:CHUNK_ROWS] = value
    for start in range(CHUNK_ROWS, rows, CHUNK_ROWS):
        binding = session.io_binding()
        for name, values in _rows(feed, start).items():
            binding.bind_cpu_input(name, np.ascontiguousarray(values))
        for name, array in results.items():
            view = array[start : start + CHUNK_ROWS]
            binding.bind_output(name, "cpu", 0, view.dtype, list(view.shape), view.ctypes.data)
        session.run_with_iobinding(binding)
    return results


def _rows(feed: Mapping[str, np.ndarray], start: int) -> dict[str, np.ndarray]:
    return {name: values[start : start + CHUNK_ROWS] for name, values in feed.items()}


def _run_concatenated(
    session: ort.InferenceSession, feed: Mapping[str, np.ndarray], names: list[str], first: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """For outputs whose first axis is not the rows: run chunk by chunk and concatenate."""
    rows = len(next(iter(feed.values())))
    parts = {name: [value] for name, value in first.items()}
    for start in range(CHUNK_ROWS, rows, CHUNK_ROWS):
        for name, value in zip(names, session.run(names, _rows(feed, start)), strict=True):
            parts[name].append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def run_model(
    model: onnx.ModelProto, feed: Mapping[str, np.ndarray], extra_outputs: Iterable[str] = ()
) -> dict[str, np.ndarray]:
    """Run a model once (graph outputs plus `extra_outputs`), without keeping the session."""
    extra = list(extra_outputs)
    session = create_session(with_outputs(model, extra) if extra else model)
    return run_session(session, feed)
