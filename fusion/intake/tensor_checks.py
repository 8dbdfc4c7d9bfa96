"""Tensor checks and external data: every declared size bounded, every byte accounted for.

PyTorch's exporter keeps large weights in a companion file (`model.onnx.data`) that tensors reference by
file name, offset and length. Intake never touches the filesystem: the references must name the uploaded
companion exactly, and their bytes are copied into the tensors so the model becomes self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import PurePosixPath

import onnx
from onnx import TensorProto

from fusion.intake.graph import all_graphs
from fusion.intake.records import IntakeLimits, ModelRejected
from fusion.intake.weights import SMALL_TENSOR_BYTES, WeightsData

_PROTOBUF_LIMIT = 2**31 - 1
_T = TensorProto
_BITS: dict[int, int] = {  # keyed by the plain int a TensorProto's data_type field holds
    **dict.fromkeys((_T.UINT2, _T.INT2), 2),
    **dict.fromkeys((_T.UINT4, _T.INT4, _T.FLOAT4E2M1), 4),
    **dict.fromkeys((_T.FLOAT6E2M3, _T.FLOAT6E3M2), 6),
    **dict.fromkeys((_T.UINT8, _T.INT8, _T.BOOL, _T.FLOAT8E4M3FN, _T.FLOAT8E4M3FNUZ), 8),
    **dict.fromkeys((_T.FLOAT8E5M2, _T.FLOAT8E5M2FNUZ, _T.FLOAT8E8M0), 8),
    **dict.fromkeys((_T.UINT16, _T.INT16, _T.FLOAT16, _T.BFLOAT16), 16),
    **dict.fromkeys((_T.FLOAT, _T.INT32, _T.UINT32), 32),
    **dict.fromkeys((_T.DOUBLE, _T.INT64, _T.UINT64, _T.COMPLEX64), 64),
    _T.COMPLEX128: 128,
}
"""Bits per element of each fixed-size tensor type (everything but STRING)."""
_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def iter_tensors(graph: onnx.GraphProto) -> Iterator[TensorProto]:
    """Every dense tensor in the graph and its subgraphs: initializers, constants, sparse parts."""
    for current in all_graphs(graph):
        yield from current.initializer
        for sparse in iter_sparse_tensors(current, nested=False):
            yield sparse.values
            yield sparse.indices
        for node in current.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def iter_sparse_tensors(graph: onnx.GraphProto, *, nested: bool = True) -> Iterator[onnx.SparseTensorProto]:
    for current in all_graphs(graph) if nested else [graph]:
        yield from current.sparse_initializer
        for node in current.node:
            for attr in node.attribute:
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor
                yield from attr.sparse_tensors


def _shape(dims: list[int]) -> str:
    return "[" + ", ".join(map(str, dims)) + "]"


def _type_name(data_type: int) -> str:
    return TensorProto.DataType.Name(data_type) if data_type in TensorProto.DataType.values() else str(data_type)


def check_declared_sizes(graph: onnx.GraphProto, limits: IntakeLimits) -> None:
    """Reject tensors whose declared shape is negative or too large, before any data is read or copied."""
    declared = [(t.name, list(t.dims)) for t in iter_tensors(graph)]
    declared += [(s.values.name, list(s.dims)) for s in iter_sparse_tensors(graph)]
    for name, dims in declared:
        if any(d < 0 for d in dims):
            raise ModelRejected(f"Tensor '{name}' declares a negative dimension {_shape(dims)}. Re-export the model.")
        elements = math.prod(dims)
        if elements > limits.max_tensor_elements:
            raise ModelRejected(
                f"Tensor '{name}' declares {elements:,} elements (shape {_shape(dims)}), above the limit of "
                f"{limits.max_tensor_elements:,}. Use smaller layers or embedding tables."
            )
    for tensor in iter_tensors(graph):
        if tensor.data_type != TensorProto.STRING and tensor.data_type not in _BITS:
            raise ModelRejected(
                f"Tensor '{tensor.name}' has no valid element type ({_type_name(tensor.data_type)}). "
                "Re-export the model."
            )


def _data_bytes(tensor: TensorProto) -> int:
    """Bytes the tensor's raw data must hold; sub-byte types are packed."""
    return (math.prod(tensor.dims) * _BITS[tensor.data_type] + 7) // 8


def embed_external_data(graph: onnx.GraphProto, weights: WeightsData | None) -> None:
    """Check every externally stored tensor's reference, and copy its bytes from the uploaded companion into
    the tensor itself; large initializers of the main graph keep their reference (fusion.intake.weights)."""
    companion = PurePosixPath(weights[0].replace("\\", "/")).name if weights else None
    referenced = False
    main_initializers = len(graph.initializer)  # iter_tensors yields them first
    for position, tensor in enumerate(iter_tensors(graph)):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        _check_bare_name(tensor.name, location)
        if weights is None:
            raise ModelRejected(
                f"The model keeps its weights in a separate file '{location}' that was not uploaded. Upload "
                f"'{location}' together with the model, or re-export with all weights inside the .onnx file: "
                "torch.onnx.export(..., external_data=False) with the dynamo exporter, or "
                "onnx.save(model, path, save_as_external_data=False)."
            )
        if location != companion:
            raise ModelRejected(
                f"Tensor '{tensor.name}' reads its data from '{location}', but the uploaded weights file is "
                f"'{companion}'. Upload the file the model names, under its original name."
            )
        start, stop = _byte_range(tensor, info, len(weights[1]))
        referenced = True
        if position < main_initializers and stop - start > SMALL_TENSOR_BYTES:
            for data_field in _DATA_FIELDS:
                tensor.ClearField(data_field)
            del tensor.external_data[:]
            tensor.external_data.add(key="location", value=companion)
            tensor.external_data.add(key="offset", value=str(start))
            tensor.external_data.add(key="length", value=str(stop - start))
            continue
        tensor.raw_data = weights[1][start:stop]
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT
    if weights is not None and not referenced:
        raise ModelRejected(
            f"A weights file '{weights[0]}' was uploaded, but the model does not reference it (its "
            "weights are all inside the .onnx file). Upload the model alone, or the weights file that "
            "belongs to it."
        )


def _check_bare_name(tensor_name: str, location: str) -> None:
    """External data may only name a file beside the model: no directories, no parent, no drive."""
    if not location or any(c in location for c in "/\\:\0") or location in (".", ".."):
        raise ModelRejected(
            f"Tensor '{tensor_name}' references external data at '{location}'; only a plain file name "
            "(no directory, '..', absolute path or drive) is accepted. Save the weights file next to the "
            "model: onnx.save(model, 'model.onnx', save_as_external_data=True, location='model.onnx.data')."
        )


def _byte_range(tensor: TensorProto, info: dict[str, str], available: int) -> tuple[int, int]:
    fix = "The weights file does not belong to this model or is truncated; upload the matching file."
    if tensor.data_type == TensorProto.STRING:
        raise ModelRejected(f"String tensor '{tensor.name}' cannot be stored externally. Re-export the model.")
    expected = _data_bytes(tensor)
    try:
        offset = int(info.get("offset", "0"))
        length = int(info.get("length", str(expected)))
    except ValueError:
        raise ModelRejected(
            f"Tensor '{tensor.name}' has a non-numeric external-data offset or length. Re-export the model."
        ) from None
    if offset < 0 or length < 0 or offset + length > available:
        raise ModelRejected(
            f"Tensor '{tensor.name}' reads bytes {offset} to {offset + length} of the weights file, which "
            f"holds {available} bytes. {fix}"
        )
    if length != expected:
        raise ModelRejected(
            f"Tensor '{tensor.name}' (shape {_shape(list(tensor.dims))}, "
            f"{_type_name(tensor.data_type)}) needs {expected} bytes, but its external data is {length} "
            f"bytes long. {fix}"
        )
    return offset, offset + length


def check_tensor_data(model: onnx.ModelProto) -> None:
    """Every tensor holds exactly the data its shape declares, and the whole model stays under 2 GiB.

    A shape that promises more than the data holds would make the runtime read past the buffer or
    allocate what the file never paid for. Protobuf cannot serialise more than 2 GiB.
    """
    external = 0
    for tensor in iter_tensors(model.graph):
        if tensor.data_location == TensorProto.EXTERNAL:  # its range in the weights file was checked
            external += _data_bytes(tensor)
            continue
        held, needed, unit = _held_and_needed(tensor)
        if held != needed:
            raise ModelRejected(
                f"Tensor '{tensor.name}' declares shape {_shape(list(tensor.dims))} "
                f"({_type_name(tensor.data_type)}), which needs {needed} {unit} of data, but holds {held}. "
                "The file is corrupted or was edited; re-export the model."
            )
    if model.ByteSize() + external > _PROTOBUF_LIMIT:
        raise ModelRejected(
            "With its weights inside, the model is larger than 2 GiB, the most one ONNX file can hold. "
            "Upload a smaller model."
        )


def _held_and_needed(tensor: TensorProto) -> tuple[int, int, str]:
    elements = math.prod(tensor.dims)
    if tensor.data_type == TensorProto.STRING:
        return len(tensor.string_data), elements, "strings"
    if tensor.raw_data:
        return len(tensor.raw_data), _data_bytes(tensor), "bytes"
    field = onnx.helper.tensor_dtype_to_field(tensor.data_type)
    bits = _BITS[tensor.data_type]
    if bits < 8:
        needed = _data_bytes(tensor)
    elif tensor.data_type in (TensorProto.COMPLEX64, TensorProto.COMPLEX128):
        needed = 2 * elements
    else:
        needed = elements
    return len(getattr(tensor, field)), needed, "values"
