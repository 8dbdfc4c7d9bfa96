"""ModelInferRequest in, as the same WireRequest the HTTP route decodes, so that every check of the inputs
against the model is the one in service/inference/service.py; results out as a ModelInferResponse.

Inputs come either all in raw_input_contents (little-endian bytes, what tritonclient sends by default) or
each in the typed `contents` field of its datatype. Outputs always go back in raw_output_contents: the
clients read them with no conversion, and it is the form that costs least to write.

Reading the input tensors' fields costs more than the model at batch 1 (protobuf's Python objects, a few
attribute reads per input, an input per feature column). A client sends the same inputs' names, datatypes
and shapes request after request, so the request is first read as an InferView, its inputs left as bytes:
inputs whose bytes were seen before are taken from `_signatures`, and only new ones are read field by field.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from service.core.errors import BadRequest
from service.inference.grpc_v2.messages import InferView, ModelInferRequest, ModelInferResponse
from service.inference.oip_tensors import datatype_of
from service.inference.protocol import WireInput, WireRequest

CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}
"""The typed field that carries each datatype's values (FP16 has none: it travels as raw bytes only)."""
RAW_SIZE_LABEL = "{} bytes of raw_input_contents"
_SIGNATURES: dict[tuple[bytes, ...], list[tuple[str, str, tuple[int, ...]]]] = {}
"""The serialized inputs of raw requests seen before -> each input's name, datatype and shape, as checked."""
_MOST_SIGNATURES = 1024


def read_view(data: bytes) -> Any:
    """The request with its inputs and outputs as bytes: enough to find the model; BadRequest if malformed."""
    return _parsed(InferView, data)


def _parsed(message_type: Any, data: bytes) -> Any:
    try:
        return message_type.FromString(data)
    except DecodeError:
        raise BadRequest("the request is not a valid ModelInferRequest message (protocol buffers)") from None


def decode_infer(view: Any) -> WireRequest:
    """Structure only, with a clear message for what is malformed; the model's checks come after."""
    if not view.inputs:
        raise BadRequest("the request needs at least one input tensor in 'inputs'")
    raw = list(view.raw_input_contents)
    if raw and len(raw) != len(view.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(view.inputs)} inputs: send one per input, in "
            "input order, or none and the values in each input's contents"
        )
    key = tuple(view.inputs)
    known = _SIGNATURES.get(key) if raw else None
    if known is not None:
        inputs = [WireInput(*signature, None, len(values)) for signature, values in zip(known, raw, strict=True)]
    else:
        # Each input tensor from its own bytes: parsing the whole request again would copy the raw contents.
        tensors = [_parsed(ModelInferRequest.InferInputTensor, tensor) for tensor in view.inputs]
        inputs = [_input(tensor, at, raw[at] if raw else None) for at, tensor in enumerate(tensors)]
        if raw:
            if len(_SIGNATURES) >= _MOST_SIGNATURES:
                _SIGNATURES.clear()
            _SIGNATURES[key] = [(tensor.name, tensor.datatype, tensor.shape) for tensor in inputs]
    outputs = [_parsed(ModelInferRequest.InferRequestedOutputTensor, output).name for output in view.outputs]
    return WireRequest(
        id=view.id or None,
        inputs=inputs,
        tensor_bytes=memoryview(b"".join(raw)),
        outputs=outputs or None,
        binary={},
        binary_by_default=True,
        may_hold_booleans=False,
        size_label=RAW_SIZE_LABEL,
    )


def encode_infer(model_name: str, version: int, results: dict[str, np.ndarray], request: WireRequest) -> Any:
    answer = ModelInferResponse(model_name=model_name, model_version=str(version))
    if request.id is not None:
        answer.id = request.id
    for name, values in results.items():
        answer.outputs.add(name=name, datatype=datatype_of(values), shape=values.shape)
        answer.raw_output_contents.append(np.ascontiguousarray(values, values.dtype.newbyteorder("<")).tobytes())
    return answer


def _input(tensor: Any, position: int, raw: bytes | None) -> WireInput:
    name = tensor.name
    if not name:
        raise BadRequest(f"input {position} needs a 'name'")
    if not tensor.datatype:
        raise BadRequest(f"input '{name}' needs a 'datatype' such as \"FP32\"")
    shape = tuple(tensor.shape)
    if any(dim < 0 for dim in shape):
        raise BadRequest(f"input '{name}' has shape {list(shape)}; dimensions must not be negative")
    given = [field.name for field, _ in tensor.contents.ListFields()]
    if raw is not None:
        if given:
            raise BadRequest(
                f"input '{name}' has values in contents.{given[0]}, but the request carries raw_input_contents: "
                "send every input's values there"
            )
        return WireInput(name, tensor.datatype, shape, None, len(raw))
    expected = CONTENTS_FIELD.get(tensor.datatype)
    if len(given) > 1 or (given and expected and given[0] != expected):
        where = f"contents.{expected}" if expected else "raw_input_contents"
        raise BadRequest(
            f"input '{name}' ({tensor.datatype}) has values in contents.{', contents.'.join(given)}; send them in "
            f"{where}"
        )
    return WireInput(name, tensor.datatype, shape, list(getattr(tensor.contents, given[0])) if given else [], None)
