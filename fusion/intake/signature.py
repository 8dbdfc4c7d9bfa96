"""What the model takes and gives: feature inputs, the score output, and its canonical form.

Canonical means every binary or regression model outputs [N] and every multiclass model [N, C], so the
fusion engine and the inference service never have to guess which column or axis holds the score.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fusion.intake.graph import DEFAULT_DOMAINS, GraphIndex
from fusion.intake.ml_attributes import attributes, length, text, values
from fusion.intake.records import FeatureKind, ModelRejected
from fusion.supported_ops import ML_DOMAIN

Dims = tuple[int | str | None, ...]
"""A tensor shape: a fixed size, a symbolic name, or None where unknown."""

# Keyed by the plain int a tensor type's elem_type field holds.
CATEGORICAL_TYPES: dict[int, str] = {TensorProto.INT32: "int32", TensorProto.INT64: "int64"}
DENSE_TYPES: dict[int, str] = {
    TensorProto.FLOAT16: "float16",
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
}
_SEE_THROUGH = {"Identity", "Squeeze", "Unsqueeze", "Reshape", "Flatten", "Gather"}
"""Ops that select or reshape a score without changing whether it is a probability."""
_CLASSIFIERS = frozenset({"TreeEnsembleClassifier", "LinearClassifier"})
_ZIPMAP_HINT = (
    "Converters wrap class probabilities in ZipMap by default: export with zipmap=False, i.e. "
    "options={'zipmap': False} in skl2onnx (to_onnx(model, X, options={'zipmap': False})) and "
    "zipmap=False in onnxmltools (convert_lightgbm(model, ..., zipmap=False))."
)


def dims_of(value: onnx.ValueInfoProto) -> Dims | None:
    """The declared shape of a tensor value, or None when not even its rank is known."""
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    return tuple(
        d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
        for d in tensor.shape.dim
    )


def shape_text(dims: Dims) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def choose_score(graph: onnx.GraphProto) -> str:
    """The output holding the score: the only output, or the only float tensor among several."""
    index = GraphIndex(graph)
    for output in graph.output:
        producer = index.producers.get(output.name)
        if producer is not None and producer.op_type == "ZipMap":
            raise ModelRejected(f"Output '{output.name}' is a ZipMap (a list of dicts), not a tensor. {_ZIPMAP_HINT}")
        kind = output.type.WhichOneof("value")
        if kind in ("sequence_type", "map_type"):
            raise ModelRejected(f"Output '{output.name}' is a sequence or map, not a tensor. {_ZIPMAP_HINT}")
        if kind != "tensor_type":
            raise ModelRejected(
                f"Output '{output.name}' is not a dense tensor ({kind or 'no type declared'}). Export the "
                "model so that its score is a plain float tensor."
            )
    floats = [o.name for o in graph.output if o.type.tensor_type.elem_type in DENSE_TYPES]
    if len(floats) == 1:
        return floats[0]
    names = ", ".join(f"'{o.name}'" for o in graph.output)
    if not floats:
        raise ModelRejected(
            f"No output of the model is a float tensor (outputs: {names}). fusebox needs the score, "
            "probability or regression value: export that output (not only the predicted label)."
        )
    raise ModelRejected(
        f"The model has several float outputs ({names}), so the score is ambiguous. Export the model with "
        "a single score output."
    )


def feature_dims(value: onnx.ValueInfoProto) -> tuple[FeatureKind, str, int, int]:
    """An input's kind, dtype, width and rank, checked to be a batch of ids or values: [N] or [N, k].

    The width is 1 for [N] inputs, k for [N, k] ones."""
    name = value.name
    tensor = value.type.tensor_type
    elem = tensor.elem_type
    if not value.type.HasField("tensor_type") or (elem not in CATEGORICAL_TYPES and elem not in DENSE_TYPES):
        found = TensorProto.DataType.Name(elem) if value.type.HasField("tensor_type") else "not a tensor"
        raise ModelRejected(
            f"Input '{name}' is {found}; fusebox feeds int32/int64 category ids or float16/float32/float64 "
            "values. Encode strings and booleans as integer ids (or floats) before export."
        )
    dims = dims_of(value)
    if dims is None or len(dims) not in (1, 2):
        found = "undeclared" if dims is None else shape_text(dims)
        raise ModelRejected(
            f"Input '{name}' has shape {found}; fusebox feeds [N] or [N, k] batches. Export the model with "
            "inputs of shape [batch] or [batch, features]."
        )
    if isinstance(dims[0], int):
        raise ModelRejected(
            f"Input '{name}' has a fixed batch size of {dims[0]} (shape {shape_text(dims)}); fusebox feeds "
            "batches of any size. Export with a dynamic batch axis: dynamic_shapes={...: {0: "
            "torch.export.Dim('batch')}} (dynamo exporter), "
            f"dynamic_axes={{'{name}': {{0: 'batch'}}}} (legacy exporter), "
            "or [None, k] input types in skl2onnx."
        )
    width = dims[1] if len(dims) == 2 else 1
    if not (isinstance(width, int) and width > 0):
        raise ModelRejected(
            f"Input '{name}' has shape {shape_text(dims)}, with no fixed feature width. Export it with a "
            "fixed second dimension (only the batch axis may be dynamic)."
        )
    kind: FeatureKind = "categorical" if elem in CATEGORICAL_TYPES else "dense"
    return kind, {**CATEGORICAL_TYPES, **DENSE_TYPES}[elem], width, len(dims)


def is_probability(graph: onnx.GraphProto, score: str) -> bool:
    """Whether the score comes out of a Sigmoid or Softmax, seen through selection and reshaping.

    skl2onnx's binary classifiers output Concat(1 - p, p) with p = Sigmoid(...): that counts too, and so do
    a classic classifier's (ai.onnx.ml) probabilities.
    """
    index = GraphIndex(graph)
    name, seen = score, set()
    while name in index.producers and name not in seen:
        seen.add(name)
        node = index.producers[name]
        if node.domain == ML_DOMAIN:
            return name == node.output[-1] and classifier_gives_probabilities(node)
        if node.domain not in DEFAULT_DOMAINS:
            return False
        if node.op_type in ("Sigmoid", "Softmax"):
            return True
        if node.op_type in _SEE_THROUGH or _times_one(index, node):
            name = node.input[0]
        elif node.op_type == "Concat" and _is_complement_pair(index, node):
            name = node.input[1]
        else:
            return False
    return False


def classifier_gives_probabilities(node: onnx.NodeProto) -> bool:
    """A classic classifier's second output holds probabilities when a post-transform makes them, or when,
    untransformed, its leaves hold class frequencies (a random forest averages votes: weights in [0, 1])."""
    if node.op_type not in _CLASSIFIERS:
        return False
    attrs = attributes(node)
    if text(attrs, "post_transform", "NONE") != "NONE":
        return True
    weights = values(attrs.get("class_weights") or attrs.get("class_weights_as_tensor"))
    base = values(attrs.get("base_values") or attrs.get("base_values_as_tensor"))
    return node.op_type == "TreeEnsembleClassifier" and all(0 <= w <= 1 for w in weights) and not any(base)


def two_class_classifier(graph: onnx.GraphProto, score: str) -> bool:
    """The score is a classic classifier's [N, 2] class-score output, seen through identities."""
    index = GraphIndex(graph)
    name = score
    while name in index.producers:
        node = index.producers[name]
        if node.domain == ML_DOMAIN:
            attrs = attributes(node)
            labels = length(attrs, "classlabels_int64s") or length(attrs, "classlabels_strings")
            labels = labels or length(attrs, "classlabels_ints")
            return node.op_type in _CLASSIFIERS and name == node.output[-1] and labels == 2
        if not (node.op_type == "Identity" or _times_one(index, node)):
            return False
        name = node.input[0]
    return False


def _times_one(index: GraphIndex, node: onnx.NodeProto) -> bool:
    """Mul by a constant 1 (onnxmltools ends its LightGBM graphs with one)."""
    if node.op_type != "Mul" or node.domain not in DEFAULT_DOMAINS or len(node.input) != 2:
        return False
    one = index.constant(node.input[1])
    return one is not None and one.size == 1 and bool(np.all(one == 1))


def _is_complement_pair(index: GraphIndex, concat: onnx.NodeProto) -> bool:
    if len(concat.input) != 2:
        return False
    negative, positive = concat.input
    sub = index.producers.get(negative)
    if sub is None or sub.op_type != "Sub" or sub.input[1] != positive:
        return False
    one = index.constant(sub.input[0])
    return one is not None and one.size > 0 and bool(np.all(one == 1))


def canonicalize_output(
    graph: onnx.GraphProto, score: str, dims: Dims | None, probability: bool, two_classes: bool = False
) -> int:
    """Bring the score to [N] (binary/regression) or [N, C] (multiclass); returns the output width.

    [N, 1] is squeezed; a binary classifier's [N, 2] probabilities (or a two-class classic classifier's
    class scores, `two_classes`) become the positive-class column.
    The output keeps its name and declares its canonical shape.
    """
    if dims is not None and len(dims) == 1:
        _declare_output_shape(graph, score, dims)
        return 1
    if dims is None or len(dims) != 2:
        raise _score_shape_rejected(score, dims)
    width = dims[1]
    if width == 1:
        _append_output_node(graph, score, "Squeeze", np.array([1], dtype=np.int64))
    elif width == 2 and (probability or two_classes):
        _append_output_node(graph, score, "Gather", np.array(1, dtype=np.int64), axis=1)
    elif isinstance(width, int) and width >= 2:
        _declare_output_shape(graph, score, dims)
        return width
    else:
        raise _score_shape_rejected(score, dims)
    _declare_output_shape(graph, score, dims[:1])
    return 1


def _score_shape_rejected(score: str, dims: Dims | None) -> ModelRejected:
    found = "undeclared" if dims is None else shape_text(dims)
    return ModelRejected(
        f"The score output '{score}' has shape {found}; fusebox needs one score per row: [N], [N, 1], "
        "or [N, C] class scores with a fixed C. Change the model's head to output that, and re-export."
    )


def _append_output_node(graph: onnx.GraphProto, score: str, op_type: str, operand: np.ndarray, **attrs: int) -> None:
    """Append `op_type(score, operand)` as the new producer of `score`, so the output keeps its name."""
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    taken |= {t.name for t in graph.initializer} | {v.name for v in graph.input}
    before, constant, node_name = (_fresh(f"{score}_{suffix}", taken) for suffix in ("raw", "index", "canonical"))
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == score:
                node.output[i] = before
    graph.initializer.append(numpy_helper.from_array(operand, constant))
    node = helper.make_node(op_type, [before, constant], [score], name=node_name)
    # Attributes added apart from make_node, whose own keywords (name, domain...) an attribute could shadow.
    node.attribute.extend(helper.make_attribute(key, value) for key, value in sorted(attrs.items()))
    graph.node.append(node)


def _declare_output_shape(graph: onnx.GraphProto, score: str, dims: Dims) -> None:
    for i in reversed(range(len(graph.value_info))):
        if graph.value_info[i].name == score:
            del graph.value_info[i]
    shape = next(o for o in graph.output if o.name == score).type.tensor_type.shape
    del shape.dim[:]
    for size in dims:
        dim = shape.dim.add()
        if isinstance(size, int):
            dim.dim_value = size
        elif size is not None:
            dim.dim_param = size


def _fresh(base: str, taken: set[str]) -> str:
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name
