"""What the serving tests over HTTP and gRPC share: a deployed model's expected answers from ONNX Runtime,
its inputs as tritonclient.grpc tensors, and metric totals read from /metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import tritonclient.grpc as triton_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import np_to_triton_dtype

from fusion.onnx_runtime import model_feeds


def feeds_and_expected(model_path: Path, rows: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model's inputs from `rows`, and its outputs for them in ONNX Runtime here."""
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    feeds = model_feeds(session.get_inputs(), rows)
    names = [output.name for output in session.get_outputs()]
    return feeds, dict(zip(names, session.run(names, feeds), strict=True))


def grpc_inputs(feeds: dict[str, np.ndarray]) -> list[triton_grpc.InferInput]:
    inputs = []
    for name, values in feeds.items():
        tensor = triton_grpc.InferInput(name, list(values.shape), np_to_triton_dtype(values.dtype))
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def metric_total(metrics_text: str, sample: str, **labels: str) -> float:
    """The sum of a sample's values over the series whose labels include `labels` (0 when there is none)."""
    return sum(
        found.value
        for family in text_string_to_metric_families(metrics_text)
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )
