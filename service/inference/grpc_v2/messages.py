"""The protocol's message classes, built from the compiled grpc_predict_v2.proto in a descriptor pool of
their own.

Not protoc's generated Python: that registers `inference.ModelInferRequest` and the rest in protobuf's
default pool, where tritonclient.grpc registers its own messages of the same names, and a process importing
both fails. `make proto` recompiles the .binpb after an edit of the .proto (tests/service/test_grpc_proto.py
checks that they agree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "inference.GRPCInferenceService"
DESCRIPTOR_SET = Path(__file__).with_name("grpc_predict_v2.binpb")

_files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes()).file
_pool = descriptor_pool.DescriptorPool()
for _file in _files:
    _pool.Add(_file)
_classes: dict[str, Any] = message_factory.GetMessages(list(_files), pool=_pool)


def _message(name: str) -> Any:
    return _classes[f"inference.{name}"]


ServerLiveRequest = _message("ServerLiveRequest")
ServerLiveResponse = _message("ServerLiveResponse")
ServerReadyRequest = _message("ServerReadyRequest")
ServerReadyResponse = _message("ServerReadyResponse")
ModelReadyRequest = _message("ModelReadyRequest")
ModelReadyResponse = _message("ModelReadyResponse")
ServerMetadataRequest = _message("ServerMetadataRequest")
ServerMetadataResponse = _message("ServerMetadataResponse")
ModelMetadataRequest = _message("ModelMetadataRequest")
ModelMetadataResponse = _message("ModelMetadataResponse")
ModelInferRequest = _message("ModelInferRequest")
ModelInferResponse = _message("ModelInferResponse")


def _view() -> Any:
    """ModelInferRequest's fields with the same numbers, but its input tensors and requested outputs as bytes
    (length-delimited either way on the wire), so that reading a request leaves them undecoded. Parameters
    (field 4) are not read: fusebox takes none."""
    view = descriptor_pb2.FileDescriptorProto(name="fusebox_infer_view.proto", package="fusebox", syntax="proto3")
    message = view.message_type.add(name="InferView")
    field = descriptor_pb2.FieldDescriptorProto
    for name, number, kind, label in (
        ("model_name", 1, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("model_version", 2, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("id", 3, field.TYPE_STRING, field.LABEL_OPTIONAL),
        ("inputs", 5, field.TYPE_BYTES, field.LABEL_REPEATED),
        ("outputs", 6, field.TYPE_BYTES, field.LABEL_REPEATED),
        ("raw_input_contents", 7, field.TYPE_BYTES, field.LABEL_REPEATED),
    ):
        message.field.add(name=name, number=number, type=kind, label=label)
    _pool.Add(view)
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName("fusebox.InferView"))


InferView = _view()
