"""The /v2 infer wire format: a JSON body, or the binary tensor extension's JSON header followed by raw
tensor bytes (`Inference-Header-Content-Length` says where the JSON ends).

Decoding checks the message's structure only, with a 400 for anything malformed; whether the tensors fit
the model is tensors.py's job. Bodies are parsed with orjson, not pydantic: a 1024-row request carries
tens of thousands of numbers, and the protocol's envelope is small enough to check by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import orjson
from starlette.requests import Request

from service.core.errors import BadRequest, TooLarge
from service.inference.oip_tensors import datatype_of

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_EXTENSION = "binary_tensor_data"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"


class WireInput(NamedTuple):  # a tuple: one is made per input per request, and dataclasses cost more
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any] | None
    """JSON values, flat or nested; None when the tensor came as bytes."""
    size: int | None
    """binary_data_size: its bytes follow those of the binary inputs before it; None when it came as JSON."""


@dataclass(frozen=True)
class WireRequest:
    id: str | None
    inputs: list[WireInput]
    tensor_bytes: memoryview
    """What follows the JSON header: the binary inputs' bytes, in input order."""
    outputs: list[str] | None
    """Asked-for outputs in order; None: every output."""
    binary: dict[str, bool]
    """Outputs whose own parameters say binary_data true or false."""
    binary_by_default: bool
    """binary_data_output: the outputs that don't say come as bytes."""
    may_hold_booleans: bool
    """The JSON has a true or false somewhere: only then must the data be searched for them."""
    size_label: str = "binary_data_size {}"
    """How the protocol names an input's byte count, for messages: '{}' is the count."""

    def wants_binary(self, output: str) -> bool:
        return self.binary.get(output, self.binary_by_default)


async def read_body(request: Request, limit: int, watch: Callable[[bytes], None] | None = None) -> bytes:
    """The raw body, refused once it passes `limit` bytes (whatever Content-Length claimed); `watch` sees
    each chunk as it arrives and may refuse the request by raising."""
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise BadRequest(f"request bodies must not be compressed (Content-Encoding: {encoding[:20]})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is larger than the limit of {limit:,} bytes")
        if watch is not None:
            watch(chunk)
        chunks.append(chunk)
    return b"".join(chunks)


def decode_request(body: bytes, header_length: str | None) -> WireRequest:
    json_end = len(body) if header_length is None else _json_length(header_length, len(body))
    try:
        message = orjson.loads(body[:json_end])
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the request body is not valid JSON: {error}") from None
    if not isinstance(message, dict):
        raise BadRequest("the request must be a JSON object with 'inputs'")
    parameters = _object(message.get("parameters"), "parameters")
    inputs = message.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    tensor_bytes = memoryview(body)[json_end:]
    decoded, used = [], 0
    for position, tensor in enumerate(inputs):
        wire = _input(tensor, position, len(tensor_bytes) - used, header_length is not None)
        used += wire.size or 0
        decoded.append(wire)
    if used != len(tensor_bytes):
        raise BadRequest(
            f"the request carries {len(tensor_bytes)} bytes after its JSON header, but the inputs' binary_data_size "
            f"add up to {used}"
        )
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("'id' must be a string")
    outputs, binary = _outputs(message.get("outputs"))
    return WireRequest(
        id=request_id,
        inputs=decoded,
        tensor_bytes=tensor_bytes,
        outputs=outputs,
        binary=binary,
        binary_by_default=_flag(parameters, "binary_data_output", "parameters"),
        may_hold_booleans=b"true" in body[:json_end] or b"false" in body[:json_end],
    )


def encode_response(
    model_name: str, version: int, results: dict[str, np.ndarray], request: WireRequest
) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when binary outputs follow it (None: all JSON)."""
    outputs, blobs = [], []
    for name, value in results.items():
        output: dict[str, Any] = {"name": name, "datatype": datatype_of(value), "shape": list(value.shape)}
        if request.wants_binary(name):
            raw = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes()
            output["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            output["data"] = np.ascontiguousarray(value).reshape(-1)
        outputs.append(output)
    message: dict[str, Any] = {"model_name": model_name, "model_version": str(version), "outputs": outputs}
    if request.id is not None:
        message["id"] = request.id
    header = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _json_length(header_length: str, body_length: int) -> int:
    if not header_length.isdigit() or not 0 < int(header_length) <= body_length:
        raise BadRequest(
            f"{HEADER_LENGTH} must be the length of the JSON header in bytes: a whole number from 1 to the "
            f"body's {body_length}, not {header_length[:40]!r}"
        )
    return int(header_length)


def _input(tensor: Any, position: int, remaining: int, has_binary: bool) -> WireInput:
    name = tensor.get("name") if type(tensor) is dict else None
    if type(name) is not str:
        raise BadRequest(f"input {position} must be an object with a 'name'")
    datatype, shape = tensor.get("datatype"), tensor.get("shape")
    if type(datatype) is not str:
        raise BadRequest(f"input '{name}' needs a 'datatype' such as \"FP32\"")
    if type(shape) is not list or not _dimensions(shape):
        raise BadRequest(f"input '{name}' needs a 'shape': a list of whole numbers, none negative")
    parameters = tensor.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise BadRequest(f"input '{name}' parameters must be a JSON object")
    size = None if parameters is None else parameters.get("binary_data_size")
    data = tensor.get("data")
    if size is None:
        if type(data) is not list:
            raise BadRequest(f"input '{name}' needs 'data' (a list of values) or parameters.binary_data_size")
        return WireInput(name, datatype, tuple(shape), data, None)
    if data is not None:
        raise BadRequest(f"input '{name}' has both 'data' and parameters.binary_data_size; send one of them")
    if not has_binary:
        raise BadRequest(f"input '{name}' has parameters.binary_data_size, but the request has no {HEADER_LENGTH}")
    if type(size) is not int or not 0 <= size <= remaining:
        raise BadRequest(
            f"input '{name}' has binary_data_size {size!r}, but only {remaining} bytes of tensor data remain"
        )
    return WireInput(name, datatype, tuple(shape), None, size)


def _dimensions(shape: list[Any]) -> bool:
    for dim in shape:  # noqa: SIM110 (a third of all() over a generator; this runs for every input of every request)
        if type(dim) is not int or dim < 0:
            return False
    return True


def _outputs(outputs: Any) -> tuple[list[str] | None, dict[str, bool]]:
    if outputs is None:
        return None, {}
    if not isinstance(outputs, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    names, binary = [], {}
    for position, output in enumerate(outputs):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise BadRequest(f"output {position} must be an object with a 'name'")
        name = output["name"]
        names.append(name)
        parameters = _object(output.get("parameters"), f"output '{name}' parameters")
        if "binary_data" in parameters:
            binary[name] = _flag(parameters, "binary_data", f"output '{name}'")
    return names, binary


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{where} parameter '{key}' must be true or false, not {value!r:.40}")
    return value
