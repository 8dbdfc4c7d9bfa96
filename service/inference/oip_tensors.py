"""Tensors of the Open Inference Protocol: datatype names, and request data checked against a model input.

Each check answers a 400 saying which input is wrong and what the model expects, so that nothing
reaches ONNX Runtime that it would refuse with an opaque message.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import groupby
from typing import TYPE_CHECKING, Any

import numpy as np

from service.core.errors import BadRequest

if TYPE_CHECKING:
    from service.inference.protocol import WireInput

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
_KINDS = {
    name: "iu" if dtype.kind in "iu" else "iuf" if dtype.kind == "f" else "b" for name, dtype in DATATYPES.items()
}
"""The numpy kinds JSON values may have for each datatype: no fractions for integers, only booleans for BOOL."""
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

    # Cached: the checks read these for every input of every request.
    @cached_property
    def numpy_dtype(self) -> np.dtype:
        return DATATYPES[self.datatype]

    @cached_property
    def wire_dtype(self) -> np.dtype:
        """The binary extension's byte order: little-endian."""
        return self.numpy_dtype.newbyteorder("<")

    @cached_property
    def any_size(self) -> bool:
        """Every dimension is free (-1): a shape fits when its rank does."""
        return all(dim == -1 for dim in self.shape)


def datatype_of_ort(ort_type: str) -> str:
    return _ORT_TYPES.get(ort_type, ort_type)


def datatype_of(array: np.ndarray) -> str:
    return _BY_DTYPE[array.dtype]


def shape_of_ort(shape: list[Any]) -> tuple[int, ...]:
    """ONNX Runtime names symbolic dimensions ('batch') or gives None; the protocol writes -1."""
    return tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in shape)


def shape_problem(name: str, datatype: str, shape: tuple[int, ...], spec: TensorSpec) -> str | None:
    """What differs from the datatype and shape the model declares, if anything; dimensions the request
    gives are never negative."""
    if datatype != spec.datatype:
        return f"input '{name}' has datatype {datatype}; the model expects {spec.datatype}"
    if len(shape) != len(spec.shape) or (
        not spec.any_size and any(want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True))
    ):
        return f"input '{name}' has shape {list(shape)}; the model expects {list(spec.shape)} (-1: any size)"
    return None


def from_json(inputs: list[WireInput], specs: dict[str, TensorSpec], may_hold_booleans: bool) -> dict[str, np.ndarray]:
    """JSON data of many inputs. Inputs of one datatype and shape convert in one numpy call (per input, the
    conversion costs more than the model at batch 1); one by one only where that fails, to say which input
    is wrong and how. numpy reads true and false as 1 and 0 among numbers: they are looked for first."""
    for tensor in inputs if may_hold_booleans else ():
        if specs[tensor.name].datatype != "BOOL" and _holds_boolean(tensor.data or []):
            raise BadRequest(f"input '{tensor.name}' ({specs[tensor.name].datatype}) must hold numbers, not true/false")
    groups: dict[tuple[str, tuple[int, ...]], list[WireInput]] = defaultdict(list)
    for tensor in inputs:
        groups[tensor.datatype, tensor.shape].append(tensor)
    arrays = {}
    for (_, shape), group in groups.items():
        spec = specs[group[0].name]
        values = _stacked(group, shape, spec) if len(group) > 1 else None
        if values is None:
            arrays.update({t.name: to_array(t.name, t.shape, t.data or [], specs[t.name]) for t in group})
        else:
            arrays.update({tensor.name: values[position] for position, tensor in enumerate(group)})
    return arrays


def _holds_boolean(data: list[Any]) -> bool:
    return any(type(value) is bool or (type(value) is list and _holds_boolean(value)) for value in data)


def _stacked(group: list[WireInput], shape: tuple[int, ...], spec: TensorSpec) -> np.ndarray | None:
    """[inputs, *shape] when every input's data is right, else None."""
    try:
        values = np.asarray([tensor.data for tensor in group])
    except ValueError:
        return None
    if (
        values.ndim < 2
        or values.size != len(group) * math.prod(shape)
        or values.dtype.kind not in _KINDS[spec.datatype]
    ):
        return None
    if not _fits_integer_range(values, spec):
        return None
    return values.astype(spec.numpy_dtype, copy=False).reshape(len(group), *shape)


def to_array(name: str, shape: tuple[int, ...], data: list[Any], spec: TensorSpec) -> np.ndarray:
    """JSON values as the model's dtype; whole numbers only for integer inputs, and within their range."""
    try:
        values = np.asarray(data)
    except ValueError:
        raise BadRequest(f"input '{name}': data must be a flat (or evenly nested) list of numbers") from None
    kinds = _KINDS[spec.datatype]
    if values.size and values.dtype.kind not in kinds:
        expected = {"iu": "integers", "iuf": "numbers", "b": "booleans"}[kinds]
        raise BadRequest(f"input '{name}' ({spec.datatype}) must hold {expected}")
    if values.size != math.prod(shape):
        raise BadRequest(f"input '{name}' has {values.size} values, but shape {list(shape)} holds {math.prod(shape)}")
    if not _fits_integer_range(values, spec):
        raise BadRequest(f"input '{name}' has values outside the range of {spec.datatype}")
    return values.astype(spec.numpy_dtype, copy=False).reshape(shape)


def _fits_integer_range(values: np.ndarray, spec: TensorSpec) -> bool:
    """Integers that the input's integer dtype can hold (numpy would wrap them around silently)."""
    if values.dtype.kind not in "iu" or spec.numpy_dtype.kind not in "iu" or not values.size:
        return True
    limits = np.iinfo(spec.numpy_dtype)
    return bool(limits.min <= values.min() and values.max() <= limits.max)


def from_bytes(
    inputs: list[WireInput],
    specs: Mapping[str, TensorSpec],
    tensor_bytes: memoryview,
    size_label: str = "binary_data_size {}",
) -> dict[str, np.ndarray]:
    """Little-endian tensor bytes (the binary extension's layout), row-major, of the inputs that came as
    bytes (`tensor_bytes`: all of theirs, in input order). Consecutive inputs of one datatype and shape lie
    side by side: each such run is read in one numpy call, each input a view of its row (per input, the calls
    cost more than the model). `size_label` names an input's byte count in messages, as its protocol does."""
    arrays: dict[str, np.ndarray] = {}
    start = 0
    for (datatype, shape), run in groupby(inputs, key=lambda tensor: (tensor.datatype, tensor.shape)):
        tensors = list(run)
        spec = specs[tensors[0].name]  # the datatype was checked: every input of the run has this dtype
        count = math.prod(shape)
        expected = count * spec.wire_dtype.itemsize
        for tensor in tensors:
            if tensor.size != expected:
                raise BadRequest(
                    f"input '{tensor.name}' has {size_label.format(tensor.size)}, but shape {list(shape)} of "
                    f"{datatype} takes {expected} bytes"
                )
        values = np.frombuffer(tensor_bytes, spec.wire_dtype, count * len(tensors), start)
        values = values.reshape(len(tensors), *shape)
        start += expected * len(tensors)
        if datatype == "BOOL" and values.size:
            _check_booleans(tensors, values)
        # ONNX Runtime wants aligned, native-order memory; the bytes sit wherever the JSON header ended.
        if not (values.flags.aligned and spec.wire_dtype.isnative):
            values = values.astype(spec.numpy_dtype)
        arrays.update(zip([tensor.name for tensor in tensors], values, strict=True))
    return arrays


def _check_booleans(tensors: list[WireInput], values: np.ndarray) -> None:
    wrong = values.view(np.uint8).reshape(len(tensors), -1).max(axis=1) > 1
    if wrong.any():
        raise BadRequest(f"input '{tensors[int(np.argmax(wrong))].name}' (BOOL) must hold bytes 0 or 1")


class ValueCheck:
    """Every float finite, every id within its embedding table: a model's inputs sorted into those two kinds
    once, so that a request's inputs of a kind are checked in one pass (per input, the checks cost more than
    the model on small requests)."""

    def __init__(self, specs: list[TensorSpec], cardinalities: Mapping[str, int]) -> None:
        self.floats = [spec.name for spec in specs if spec.numpy_dtype.kind == "f"]
        self.ids = [spec.name for spec in specs if spec.name in cardinalities]
        self.limits = np.array([cardinalities[name] for name in self.ids], dtype=np.int64)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> None:
        problems = []
        if self.floats and not np.isfinite(np.concatenate([feeds[name] for name in self.floats], axis=None)).all():
            problems += [problem for name in self.floats if (problem := _non_finite(name, feeds[name]))]
        if self.ids:
            flat = np.concatenate([feeds[name] for name in self.ids], axis=None)
            limits = np.repeat(self.limits, [feeds[name].size for name in self.ids])
            if ((flat < 0) | (flat >= limits)).any():
                problems += [
                    problem
                    for name, table in zip(self.ids, self.limits, strict=True)
                    if (problem := _outside_table(name, feeds[name], int(table)))
                ]
        if problems:
            raise BadRequest.listing("the model could not run on these inputs", problems)


def _non_finite(name: str, values: np.ndarray) -> str | None:
    flat = values.reshape(-1)
    wrong = np.flatnonzero(~np.isfinite(flat))
    if not wrong.size:
        return None
    first = int(wrong[0])
    more = f" and {wrong.size - 1:,} more like it" if wrong.size > 1 else ""
    return f"input '{name}' holds {flat[first]} at position {first}{more}; values must be finite"


def _outside_table(name: str, values: np.ndarray, table: int) -> str | None:
    flat = values.reshape(-1)
    wrong = np.flatnonzero((flat < 0) | (flat >= table))
    if not wrong.size:
        return None
    first = int(wrong[0])
    more = f" ({wrong.size - 1:,} more ids there are outside it too)" if wrong.size > 1 else ""
    return (
        f"input '{name}' holds id {flat[first]} at position {first}, "
        f"outside its embedding table (ids 0 to {table - 1}){more}"
    )
