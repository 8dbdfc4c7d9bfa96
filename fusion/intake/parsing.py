"""From uploaded bytes to a ModelProto: size limits, protobuf parsing, opset, local functions.

Parsing protobuf runs no code, unlike unpickling: that is why ONNX is the only upload format.
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx
import onnx.inliner
import onnx.version_converter
from google.protobuf.message import DecodeError

from fusion.intake.graph import DEFAULT_DOMAINS, subgraphs
from fusion.intake.records import IntakeLimits, ModelRejected
from fusion.intake.weights import WeightsFile, weights_size
from fusion.supported_ops import ML_DOMAIN

MIN_OPSET = 13
_FunctionKey = tuple[str, str, str]


def check_upload_sizes(model_bytes: bytes, weights: WeightsFile | None, limits: IntakeLimits) -> None:
    if len(model_bytes) > limits.max_model_bytes:
        raise ModelRejected(
            f"The model file is {_size(len(model_bytes))}, above the limit of {_size(limits.max_model_bytes)}. "
            "Keep large weights in the external-data file next to the model (PyTorch's exporter writes "
            "model.onnx.data) and upload both, or shrink the model."
        )
    if weights is not None and weights_size(weights) > limits.max_weights_bytes:
        raise ModelRejected(
            f"The weights file '{weights[0]}' is {_size(weights_size(weights))}, above the limit of "
            f"{_size(limits.max_weights_bytes)}. Upload a smaller model."
        )


def _size(size: int) -> str:
    return f"{size:,} bytes" if size < 2**20 else f"{size / 2**20:,.1f} MiB"


def parse_model(model_bytes: bytes) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(model_bytes)
    except DecodeError:
        raise _not_onnx(model_bytes) from None
    if model.ir_version <= 0 or not model.opset_import or not model.HasField("graph"):
        raise _not_onnx(model_bytes)
    if not model.graph.node:
        raise ModelRejected("The model's graph is empty (no nodes). Export the trained model itself, with its layers.")
    return model


def _not_onnx(data: bytes) -> ModelRejected:
    """Name what the upload looks like, since the usual mistake is sending a checkpoint or a pickle."""
    if not data:
        looks_like = " (the file is empty)"
    elif data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        looks_like = " (it looks like a Python pickle, e.g. from joblib or pickle.dump)"
    elif data.startswith(b"PK\x03\x04"):
        looks_like = " (it looks like a zip archive, e.g. a torch.save checkpoint or a .pt2 file)"
    elif data[:512].isascii():
        looks_like = " (it looks like a text file)"
    else:
        looks_like = ""
    return ModelRejected(
        f"The upload is not an ONNX model{looks_like}. fusebox accepts ONNX files only and never loads "
        "pickles or checkpoints: export PyTorch models with torch.onnx.export and scikit-learn models "
        "with skl2onnx, and upload the .onnx file."
    )


def default_opset(model: onnx.ModelProto) -> int:
    """The standard opset the model will run at: its own, or MIN_OPSET for a classic model lifted to it.

    Classic models (those importing ai.onnx.ml) come from converters that declare old opsets (onnxmltools'
    LightGBM graph: opset 9) or none at all (its XGBoost graph): `lift_opset` brings those to MIN_OPSET,
    since their few standard operators (Identity, Cast, Mul, ...) mean the same there. Neural models must be
    exported at a supported opset, so that what fusebox runs is what the exporter wrote.
    """
    newest = onnx.defs.onnx_opset_version()
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    classic = any(o.domain == ML_DOMAIN for o in model.opset_import)
    how = f"Re-export with an opset between {MIN_OPSET} and {newest}, e.g. torch.onnx.export(..., opset_version=17)"
    if not versions and classic:
        return MIN_OPSET
    if not versions:
        raise ModelRejected(f"The model declares no standard ONNX (ai.onnx) opset. {how}.")
    version = versions[0]
    if classic and 1 <= version < MIN_OPSET:
        return MIN_OPSET
    if not MIN_OPSET <= version <= newest:
        raise ModelRejected(
            f"The model uses ONNX opset {version}; fusebox accepts opsets {MIN_OPSET} to {newest}. "
            f"{how} (skl2onnx: target_opset=17)."
        )
    return version


def lift_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """A classic model at MIN_OPSET when it declared an older standard opset or none (see default_opset).

    Runs once the graph is known to be well formed and to use only supported operators: ONNX's version
    converter is C++ that is not meant for hostile graphs."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        model.opset_import.append(onnx.helper.make_opsetid("", MIN_OPSET))
        return model
    if versions[0] >= MIN_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as error:  # the converter raises plain RuntimeErrors and pybind errors alike
        raise ModelRejected(
            f"The model uses ONNX opset {versions[0]}, which could not be converted to opset {MIN_OPSET} "
            f"({' '.join(str(error).split())[:200]}). Re-export it with target_opset={MIN_OPSET} or newer "
            "(onnxmltools and skl2onnx: target_opset=17)."
        ) from None


def inline_functions(model: onnx.ModelProto, max_nodes: int) -> onnx.ModelProto:
    """Inline model-local functions, after making sure the inlined graph stays within the node limit.

    Functions calling functions can multiply the node count exponentially, so the count is worked out
    first (memoised per function) rather than discovered by inlining.
    """
    if _expanded_node_count(model, max_nodes) > max_nodes:
        raise ModelRejected(
            f"The model has more than {max_nodes:,} nodes (counting subgraphs and inlined functions). "
            "Upload a smaller model."
        )
    if not model.functions:
        return model
    return onnx.inliner.inline_local_functions(model)


def _expanded_node_count(model: onnx.ModelProto, limit: int) -> int:
    """Nodes after inlining, counting subgraphs; stops counting once past `limit`."""
    functions = {(f.domain, f.name, f.overload): f for f in model.functions}
    memo: dict[_FunctionKey, int] = {}

    def count(nodes: Iterable[onnx.NodeProto], calling: frozenset[_FunctionKey]) -> int:
        total = 0
        for node in nodes:
            key = (node.domain, node.op_type, node.overload)
            total += function_size(key, calling) if key in functions else 1
            total += sum(count(sub.node, calling) for sub in subgraphs(node))
            if total > limit:
                break
        return total

    def function_size(key: _FunctionKey, calling: frozenset[_FunctionKey]) -> int:
        if key in calling:
            raise ModelRejected(
                f"Local function '{key[1]}' calls itself; ONNX functions cannot recurse. Re-export the model."
            )
        if key not in memo:
            memo[key] = count(functions[key].node, calling | {key})
        return memo[key]

    try:
        return count(model.graph.node, frozenset())
    except RecursionError:
        raise ModelRejected(
            "The model nests functions or subgraphs too deeply to analyse. Re-export it with fewer levels."
        ) from None
