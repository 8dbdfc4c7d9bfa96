"""Tensors of the Open Inference Protocol: datatype names, and request data checked against a model input.

Each check answers a 400 saying which input is wrong and what the model expects, so that nothing
reaches ONNX Runtime that it would refuse with an opaque message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.core.errors import BadRequest

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_BY_DTYPE = {dtype: name for name, dtype in DATATYPES.items()}
_ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as the protocol describes it; -1 marks a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return DATATYPES[self.datatype]


def datatype_of_ort(ort_type: str) -> str:
    return _ORT_TYPES.get(ort_type, ort_type)


def datatype_of(array: np.ndarray) -> str:
    return _BY_DTYPE[array.dtype]


def shape_of_ort(shape: list[Any]) -> tuple[int, ...]:
    """ONNX Runtime names symbolic dimensions ('batch') or gives None; the protocol writes -1."""
    return tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in shape)


def to_array(name: str, datatype: str, shape: list[int], data: list[Any], spec: TensorSpec) -> np.ndarray:
    if datatype != spec.datatype:
        raise BadRequest(f"input '{name}' has datatype {datatype}; the model expects {spec.datatype}")
    if len(shape) != len(spec.shape) or any(want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)):
        raise BadRequest(f"input '{name}' has shape {list(shape)}; the model expects {list(spec.shape)} (-1: any size)")
    if any(dim < 0 for dim in shape):
        raise BadRequest(f"input '{name}' has shape {list(shape)}; dimensions cannot be negative")
    try:
        values = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input '{name}': data must be a flat (or evenly nested) list of numbers") from None
    kinds = "iu" if spec.numpy_dtype.kind in "iu" else "iuf" if spec.numpy_dtype.kind == "f" else "b"
    if values.size and values.dtype.kind not in kinds:
        expected = {"iu": "integers", "iuf": "numbers", "b": "booleans"}[kinds]
        raise BadRequest(f"input '{name}' ({datatype}) must hold {expected}")
    if values.size != math.prod(shape):
        raise BadRequest(f"input '{name}' has {values.size} values, but shape {list(shape)} holds {math.prod(shape)}")
    return values.astype(spec.numpy_dtype, copy=False).reshape(shape)
