"""A deployment for the serving engines users already run: a Triton model repository (config.pbtxt beside the
ONNX file) and a KServe InferenceService manifest that serves that repository over the Open Inference
Protocol v2, as fusebox does. Both are written from the deployment's ONNX graph and batching settings.
"""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from service.core.config import Settings
from service.core.errors import Unprocessable
from service.core.storage import ArtifactStore
from service.deployments.batching import effective_batching
from service.deployments.models import Deployment

# ONNX element type -> Triton's data type (model_config.proto's DataType).
_TRITON_TYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32",
    onnx.TensorProto.UINT64: "TYPE_UINT64",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
    onnx.TensorProto.STRING: "TYPE_STRING",
}
STORAGE_URI_PLACEHOLDER = "s3://CHANGE-ME/fusebox-models"
"""Where the unpacked Triton repository will lie; the manifest says so and the user replaces it."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str
    shape: list[int | None]
    """The ONNX shape; None for a dimension without a fixed size."""


def tensor_specs(values: list[onnx.ValueInfoProto]) -> list[TensorSpec]:
    specs = []
    for value in values:
        tensor_type = value.type.tensor_type
        data_type = _TRITON_TYPES.get(tensor_type.elem_type)
        if data_type is None:
            raise Unprocessable(
                f"'{value.name}' has ONNX element type {tensor_type.elem_type}, which Triton has no type for"
            )
        shape = [dim.dim_value if dim.HasField("dim_value") else None for dim in tensor_type.shape.dim]
        specs.append(TensorSpec(value.name, data_type, shape))
    return specs


def triton_config(name: str, version: int, model: onnx.ModelProto, max_batch_size: int, max_wait_ms: float) -> str:
    """config.pbtxt for the onnxruntime backend. When every input and output leads with the batch axis,
    Triton batches along it (max_batch_size, and dynamic batching unless the deployment turned it off);
    a tensor that is one value per row ([batch]) is declared as [1] reshaped to [] (Triton's way to name a
    batch-only tensor)."""
    inputs, outputs = tensor_specs(list(model.graph.input)), tensor_specs(list(model.graph.output))
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [spec for spec in inputs if spec.name not in initializers]
    batched = all(spec.shape and spec.shape[0] is None for spec in inputs + outputs)
    lines = [
        f"name: {_quoted(name)}",
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {max_batch_size if batched else 0}",
        f"version_policy: {{ specific: {{ versions: [ {version} ] }} }}",
        *_tensors("input", inputs, batched),
        *_tensors("output", outputs, batched),
    ]
    if batched and max_wait_ms > 0:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {round(max_wait_ms * 1000)} }}")
    return "\n".join(lines) + "\n"


def _tensors(kind: str, specs: list[TensorSpec], batched: bool) -> list[str]:
    lines = [f"{kind} ["]
    for position, spec in enumerate(specs):
        dims = spec.shape[1:] if batched else spec.shape
        fields = [f"name: {_quoted(spec.name)}", f"data_type: {spec.data_type}"]
        if dims:
            fields.append(f"dims: [ {', '.join(str(-1 if dim is None else dim) for dim in dims)} ]")
        else:  # one value per row
            fields += ["dims: [ 1 ]", "reshape: { shape: [ ] }"]
        comma = "," if position < len(specs) - 1 else ""
        lines.append(f"  {{ {' '.join(fields)} }}{comma}")
    lines.append("]")
    return lines


def _quoted(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def write_triton_repository(deployment: Deployment, store: ArtifactStore, settings: Settings) -> Path:
    """A tar.gz of `<name>/config.pbtxt` and `<name>/<version>/model.onnx`, in the store's scratch folder
    (the caller removes it once sent). The model file is copied into the archive in chunks."""
    model_path = store.path(deployment.fused_model.sha256)
    # The graph's inputs and outputs are all that is read; the weights come along in the same protobuf.
    model = onnx.load(str(model_path), load_external_data=False)
    rows, wait_ms = effective_batching(deployment, settings)
    config = triton_config(deployment.name, deployment.version, model, rows, wait_ms).encode()
    handle = tempfile.NamedTemporaryFile(dir=store.scratch, suffix=".tar.gz", delete=False)  # noqa: SIM115
    with handle, tarfile.open(fileobj=handle, mode="w:gz") as archive:
        folder = tarfile.TarInfo(deployment.name)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(folder)
        entry = tarfile.TarInfo(f"{deployment.name}/config.pbtxt")
        entry.size, entry.mode = len(config), 0o644
        archive.addfile(entry, io.BytesIO(config))
        archive.add(model_path, arcname=f"{deployment.name}/{deployment.version}/model.onnx", recursive=False)
    return Path(handle.name)


def kserve_manifest(deployment: Deployment, storage_uri: str | None) -> str:
    """An InferenceService that serves the unpacked Triton repository (GET .../triton) with the ONNX model
    format over protocol v2. `storage_uri` is where that repository lies (default: a placeholder)."""
    uri = storage_uri or STORAGE_URI_PLACEHOLDER
    resource = _kubernetes_name(f"{deployment.name}-v{deployment.version}")
    return "\n".join(
        [
            "apiVersion: serving.kserve.io/v1beta1",
            "kind: InferenceService",
            "metadata:",
            f"  name: {resource}",
            "  annotations:",
            f'    fusebox/deployment: "{deployment.name}"',
            f'    fusebox/version: "{deployment.version}"',
            "spec:",
            "  predictor:",
            "    model:",
            "      modelFormat:",
            "        name: onnx",
            "      protocolVersion: v2",
            "      # The unpacked archive of GET /v1/deployments/{name}/versions/{version}/triton: a Triton model",
            "      # repository. Replace the placeholder with where you put it (s3://, gs://, pvc://, https://).",
            f'      storageUri: "{uri}"',
            "",
        ]
    )


def _kubernetes_name(text: str) -> str:
    """A DNS-1123 label: lower case letters, digits and '-', at most 63 characters, alphanumeric at both ends."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    return label or "fusebox-model"
