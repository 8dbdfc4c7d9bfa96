"""ModelInferRequest in, as the same WireRequest the HTTP route decodes, so that every check of the inputs
against the model is the one in service/inference/service.py; results out as a ModelInferResponse.

Inputs come either all in raw_input_contents (little-endian bytes, what tritonclient sends by default) or
each in the typed `contents` field of its datatype. Outputs always go back in raw_output_contents: the
clients read them with no conversion, and it is the form that costs least to write.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.core.errors import BadRequest
from service.inference.grpc_v2.messages import ModelInferResponse
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


def decode_infer(message: Any) -> WireRequest:
    """Structure only, with a clear message for what is malformed; the model's checks come after."""
    if not message.inputs:
        raise BadRequest("the request needs at least one input tensor in 'inputs'")
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: send one per input, in "
            "input order, or none and the values in each input's contents"
        )
    inputs = [_input(tensor, at, raw[at] if raw else None) for at, tensor in enumerate(message.inputs)]
    return WireRequest(
        id=message.id or None,
        inputs=inputs,
        tensor_bytes=memoryview(b"".join(raw)),
        outputs=[output.name for output in message.outputs] or None,
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
