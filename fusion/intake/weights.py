"""The uploaded weights file, never held in memory whole.

Large initializers of the main graph stay references into the uploaded companion file while the model is
checked: the checker and shape inference see a twin where they are typed inputs, ONNX Runtime maps the file
itself (external data read from a folder, not copied; in a child process: runtime.probe), and the
self-contained model is written to a file one chunk at a time. Only a caller that wants the model in
memory (the command line, tests) gets the bytes copied in at the end. Small tensors are copied in at once:
the analysis reads their values (shapes, offsets) and a copy of a few kilobytes costs nothing.
"""

from __future__ import annotations

import mmap
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

import onnx
from onnx import TensorProto, helper

WeightsData = tuple[str, bytes | mmap.mmap]
"""A weights file's name as uploaded, and its bytes (read whole, or mapped read-only)."""
WeightsFile = tuple[str, bytes | mmap.mmap | Path]
"""An uploaded weights file: its name as uploaded, and its bytes or the path it was saved to."""

SMALL_TENSOR_BYTES = 64 * 2**10
"""External tensors up to this size are copied into the model at once; larger ones are read when needed."""
_CHUNK_BYTES = 16 * 2**20
# Protobuf wire format: field number << 3 | wire type 2 (length-delimited).
_GRAPH_FIELD, _INITIALIZER_FIELD, _RAW_DATA_FIELD = 7, 5, 9


def weights_size(weights: WeightsFile) -> int:
    source = weights[1]
    return source.stat().st_size if isinstance(source, Path) else len(source)


@contextmanager
def open_weights(weights: WeightsFile | None) -> Iterator[WeightsData | None]:
    """The weights as something to slice: bytes as given, a file mapped read-only (empty files as b"")."""
    if weights is None:
        yield None
        return
    name, path = weights
    if not isinstance(path, Path):
        yield name, path  # bytes or a mapping already
        return
    with path.open("rb") as handle:
        if path.stat().st_size == 0:
            yield name, b""
            return
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            yield name, mapped


def external_range(tensor: TensorProto) -> tuple[int, int]:
    """Offset and length of a (checked) external tensor's bytes in the weights file."""
    info = {entry.key: entry.value for entry in tensor.external_data}
    return int(info.get("offset", "0")), int(info["length"])


def deferred(model: onnx.ModelProto) -> list[TensorProto]:
    """The main graph's initializers still stored in the weights file."""
    return [t for t in model.graph.initializer if t.data_location == TensorProto.EXTERNAL]


def without_external_data(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model itself, or a twin whose externally stored initializers are typed graph inputs: what the
    checker and shape inference can take without reading (or finding) the weights file."""
    external = {t.name for t in deferred(model)}
    if not external:
        return model
    twin = onnx.ModelProto()
    twin.CopyFrom(model)  # small: the large weights are not in it
    kept = [t for t in twin.graph.initializer if t.name not in external]
    typed = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in deferred(model)]
    twin.graph.ClearField("initializer")
    twin.graph.initializer.extend(kept)
    twin.graph.input.extend(typed)
    return twin


def embed_deferred(model: onnx.ModelProto, data: WeightsData) -> None:
    """Copy the deferred initializers' bytes into the model: self-contained, in memory."""
    for tensor in deferred(model):
        start, length = external_range(tensor)
        tensor.raw_data = data[1][start : start + length]
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


@contextmanager
def runtime_model(model: onnx.ModelProto, weights: WeightsFile | None) -> Iterator[tuple[bytes, str | None]]:
    """The model's bytes for ONNX Runtime, and the folder its external data is read from (None: none).

    A weights file on disk is read where it lies, under its stored name; bytes given in memory are
    written to a temporary folder first.
    """
    if weights is None or not deferred(model):
        yield model.SerializeToString(), None
        return
    source = weights[1]
    with tempfile.TemporaryDirectory(prefix="fusebox-probe-") as scratch:
        if isinstance(source, Path):
            folder, name = source.parent, source.name
        else:
            folder, name = Path(scratch), "weights.data"
            with (folder / name).open("wb") as handle:
                _copy(source, 0, len(source), handle)
        located = onnx.ModelProto()
        located.CopyFrom(model)
        for tensor in deferred(located):
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = name
        yield located.SerializeToString(), str(folder)


def write_self_contained(model: onnx.ModelProto, weights: WeightsFile | None, target: BinaryIO) -> None:
    """Write the model with every deferred initializer's bytes inside, streaming them from the weights file.

    Protobuf merges a message field that appears twice, and appends repeated fields: so the model is
    written without the deferred initializers, then followed by a second `graph` field holding only them,
    each with its raw data copied from the file in chunks.
    """
    external = deferred(model)
    if not external:
        target.write(model.SerializeToString())
        return
    if weights is None:
        raise ValueError("the model reads external data but no weights file was given")
    names = {t.name for t in external}
    rest = onnx.ModelProto()
    rest.CopyFrom(model)
    kept = [t for t in rest.graph.initializer if t.name not in names]
    rest.graph.ClearField("initializer")
    rest.graph.initializer.extend(kept)
    target.write(rest.SerializeToString())
    headers = []
    for tensor in external:
        header = TensorProto()
        header.CopyFrom(tensor)
        del header.external_data[:]
        header.data_location = TensorProto.DEFAULT
        start, length = external_range(tensor)
        body = header.SerializeToString() + _key(_RAW_DATA_FIELD) + _varint(length)
        headers.append((body, start, length))
    entries = [len(body) + length for body, _, length in headers]
    graph_length = sum(len(_key(_INITIALIZER_FIELD)) + len(_varint(size)) + size for size in entries)
    target.write(_key(_GRAPH_FIELD) + _varint(graph_length))
    with ExitStack() as opened:
        source = weights[1]
        # A file is read, not mapped: the pages a mapping touches would count in the process's memory.
        reader = opened.enter_context(source.open("rb")) if isinstance(source, Path) else source
        for (body, start, length), size in zip(headers, entries, strict=True):
            target.write(_key(_INITIALIZER_FIELD) + _varint(size) + body)
            _copy(reader, start, length, target)


def _copy(source: bytes | mmap.mmap | BinaryIO, start: int, length: int, target: BinaryIO) -> None:
    """Bytes start to start + length of `source`, a chunk at a time."""
    for offset in range(start, start + length, _CHUNK_BYTES):
        size = min(_CHUNK_BYTES, start + length - offset)
        if isinstance(source, bytes | mmap.mmap):
            target.write(source[offset : offset + size])
        else:
            source.seek(offset)
            target.write(source.read(size))


def _key(field: int) -> bytes:
    return _varint(field << 3 | 2)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)
