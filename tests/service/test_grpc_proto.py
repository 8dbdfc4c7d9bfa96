"""The gRPC service's protocol file: the compiled descriptors the service loads agree with the .proto, and
every message and method is the one Triton's own client speaks (same names, field numbers and types)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tritonclient.grpc.service_pb2 as triton_service
from google.protobuf import descriptor_pb2

from service.inference.grpc_v2 import messages
from tests.helpers import ROOT

PROTO = ROOT / "service" / "inference" / "grpc_v2" / "grpc_predict_v2.proto"


def _compiled(tmp_path: Path) -> descriptor_pb2.FileDescriptorSet:
    out = tmp_path / "compiled.binpb"
    done = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}", f"--descriptor_set_out={out}", PROTO.name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def test_the_loaded_descriptors_are_the_proto_compiled(tmp_path: Path) -> None:
    committed = descriptor_pb2.FileDescriptorSet.FromString(messages.DESCRIPTOR_SET.read_bytes())
    assert committed == _compiled(tmp_path), "grpc_predict_v2.proto changed: run `make proto`"


def _fields(message: descriptor_pb2.DescriptorProto, prefix: str = "") -> dict[str, tuple[int, int, int, str]]:
    """name -> (number, type, label, type name's last part), nested messages included (not map entries)."""
    found = {
        prefix + field.name: (field.number, field.type, field.label, field.type_name.rsplit(".", 1)[-1])
        for field in message.field
    }
    for nested in message.nested_type:
        found.update(_fields(nested, f"{prefix}{nested.name}."))
    return found


def test_every_message_and_method_is_the_one_tritonclient_speaks(tmp_path: Path) -> None:
    ours = _compiled(tmp_path).file[0]
    theirs = descriptor_pb2.FileDescriptorProto()
    triton_service.DESCRIPTOR.CopyToProto(theirs)
    assert ours.package == theirs.package == "inference"
    their_messages = {message.name: message for message in theirs.message_type}
    for message in ours.message_type:
        assert _fields(message) == _fields(their_messages[message.name]), message.name
    their_methods = {method.name: method for method in theirs.service[0].method}
    assert ours.service[0].name == theirs.service[0].name
    for method in ours.service[0].method:
        theirs_method = their_methods[method.name]
        assert (method.input_type, method.output_type) == (theirs_method.input_type, theirs_method.output_type)
    assert {method.name for method in ours.service[0].method} == {
        "ServerLive", "ServerReady", "ServerMetadata", "ModelReady", "ModelMetadata", "ModelInfer"
    }  # fmt: skip


def test_the_service_messages_live_apart_from_tritonclients() -> None:
    """Both define inference.ModelInferRequest; ours are in a pool of their own, so one process holds both."""
    request = messages.ModelInferRequest(model_name="census", raw_input_contents=[b"\0" * 4])
    request.inputs.add(name="age", datatype="FP32", shape=[1])
    theirs = triton_service.ModelInferRequest.FromString(request.SerializeToString())
    assert theirs.inputs[0].name == "age" and theirs.raw_input_contents == [b"\0" * 4]
