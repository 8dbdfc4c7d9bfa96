"""Intake budget: what running a model would cost, worked out from shapes alone, before anything runs it.

A few hundred bytes of ONNX can ask for gigabytes (ConstantOfShape with a large shape) or minutes of CPU
(a chain of large MatMuls), and ONNX Runtime would do that work when the probe loads and runs the model.
So the graph's tensor sizes are inferred first, on a skeleton of the model (large weights replaced by
their declared types, the batch axis fixed), and the model is refused when its intermediate tensors or
its arithmetic exceed the limits.

The skeleton is inferred twice, at 1 and at 2 rows: a tensor whose size changes with the batch costs
bytes per row, one whose size does not is a constant-shaped tensor (the ConstantOfShape case), and the
FLOPs of one row include the work that does not depend on the batch at all. Constant-shaped tensors may
add up to the model's own weights plus a limit: a transposed or cast weight matrix is as large as the
weights it comes from, and the upload paid for those.

Only the main graph is costed: the engine runs no control-flow operators, so no subgraph reaches here.
Operators outside the standard domain (ai.onnx.ml trees, anything the shape inference does not know) are
costed by the tensors they read and write where those are known, and otherwise listed as unsized rather
than refused: the probe still runs them. Standard operators that build tensors from run-time data
(ConstantOfShape, Expand, Tile ...) are refused when their output size cannot be inferred, since nothing
else bounds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import onnx
from onnx import TensorProto, helper

from fusion.intake.graph import DEFAULT_DOMAINS
from fusion.intake.parsing import _size
from fusion.intake.records import IntakeLimits, ModelRejected
from fusion.intake.tensor_checks import _BITS

_SHAPE_DATA_ELEMENTS = 4096
"""Tensors up to this size keep their values in the skeleton: shapes, axes and offsets are short, and
shape inference needs their values. Larger ones are weights; their type and dimensions are enough."""
_GENERATORS = frozenset({"ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad", "OneHot"})
"""Standard operators whose output size comes from data rather than from the sizes of their inputs."""
_MATRIX_PRODUCTS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul"})
_CONVOLUTIONS = frozenset({"Conv", "ConvInteger", "QLinearConv"})
_Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class TensorCost:
    """One intermediate tensor: the node that makes it and what it takes."""

    tensor: str
    node: str
    op_type: str
    shape: tuple[int, ...]
    """Its shape at one row."""
    nbytes: int
    """Bytes per row for a tensor that follows the batch; bytes in all for a constant-shaped one."""

    def describe(self) -> str:
        return f"'{self.tensor}' of node '{self.node}' ({self.op_type}, shape {list(self.shape)}, {_size(self.nbytes)})"


@dataclass(frozen=True)
class NodeCost:
    """One node's arithmetic for one row."""

    node: str
    op_type: str
    flops: int

    def describe(self) -> str:
        return f"node '{self.node}' ({self.op_type}, {self.flops:,})"


@dataclass(frozen=True)
class CostEstimate:
    """What one row of the model costs, from its inferred shapes."""

    row_tensors: tuple[TensorCost, ...]
    """Intermediate tensors whose size follows the batch, largest first; nbytes per row."""
    constant_tensors: tuple[TensorCost, ...]
    """Intermediate tensors whose size does not depend on the batch, largest first."""
    flops_per_row: int
    """Arithmetic for a batch of one row, the batch-independent part included."""
    batch_independent_flops: int
    heaviest_nodes: tuple[NodeCost, ...]
    """The three nodes with the most FLOPs for one row, most first."""
    weight_bytes: int
    """Bytes of the model's initializers and Constant values: what it may derive constant tensors from."""
    unsized: tuple[str, ...]
    """Nodes with an output whose size shape inference could not work out; they are not counted."""

    @property
    def bytes_per_row(self) -> int:
        return sum(t.nbytes for t in self.row_tensors)

    @property
    def constant_bytes(self) -> int:
        return sum(t.nbytes for t in self.constant_tensors)


def check_budget(model: onnx.ModelProto, limits: IntakeLimits) -> CostEstimate:
    """Refuse the model if its intermediate tensors or its FLOPs exceed `limits`; else return the estimate."""
    estimate = estimate_cost(model)
    if estimate.flops_per_row > limits.max_flops_per_row:
        raise ModelRejected(
            f"One input row of the model takes about {estimate.flops_per_row:,} floating-point operations "
            f"({estimate.batch_independent_flops:,} of them whatever the batch size), above the limit of "
            f"{limits.max_flops_per_row:,} {_setting('max_flops_per_row')}. The heaviest: "
            f"{'; '.join(n.describe() for n in estimate.heaviest_nodes)}. Upload a smaller model."
        )
    if estimate.bytes_per_row > limits.max_activation_bytes_per_row:
        raise ModelRejected(
            f"The model's intermediate tensors take {_size(estimate.bytes_per_row)} per input row, above the "
            f"limit of {_size(limits.max_activation_bytes_per_row)} {_setting('max_activation_bytes_per_row')}. "
            f"The largest: {_largest(estimate.row_tensors)}. Use narrower layers or fewer of them."
        )
    allowed = estimate.weight_bytes + limits.max_constant_tensor_bytes
    if estimate.constant_bytes > allowed:
        raise ModelRejected(
            f"The model builds {_size(estimate.constant_bytes)} of tensors that do not depend on the input "
            f"rows, more than its own weights ({_size(estimate.weight_bytes)}) plus the limit of "
            f"{_size(limits.max_constant_tensor_bytes)} {_setting('max_constant_tensor_bytes')}. The largest: "
            f"{_largest(estimate.constant_tensors)}. Store real weights as initializers, or build smaller constants."
        )
    return estimate


def estimate_cost(model: onnx.ModelProto) -> CostEstimate:
    """Shapes at 1 and 2 rows, and from them each node's bytes and FLOPs (see the module docstring)."""
    one, two = _infer(model, rows=1), _infer(model, rows=2)
    row_tensors: list[TensorCost] = []
    constant_tensors: list[TensorCost] = []
    unsized: list[str] = []
    node_flops: list[NodeCost] = []
    flops_two = 0
    for node in model.graph.node:
        label = node.name or node.op_type
        outputs = [name for name in node.output if name]
        if any(name not in one or name not in two for name in outputs):
            if node.domain in DEFAULT_DOMAINS and node.op_type in _GENERATORS:
                raise ModelRejected(
                    f"The size of what node '{label}' ({node.op_type}) builds cannot be worked out before "
                    "running the model (shape inference finds no fixed shape for it), so fusebox will not "
                    "run it. Give it a shape computed from constants and the input's shape only."
                )
            unsized.append(label)
        node_flops.append(NodeCost(label, node.op_type, _flops(node, one)))
        flops_two += _flops(node, two)
        for name in outputs:
            if name not in one or name not in two or _is_constant(node):
                continue  # a Constant's value counts with the weights
            at_one, at_two = _nbytes(*one[name]), _nbytes(*two[name])
            shape = one[name][0]
            if at_two == at_one:
                constant_tensors.append(TensorCost(name, label, node.op_type, shape, at_one))
            else:
                row_tensors.append(TensorCost(name, label, node.op_type, shape, abs(at_two - at_one)))
    flops_one = sum(n.flops for n in node_flops)
    return CostEstimate(
        row_tensors=tuple(sorted(row_tensors, key=lambda t: -t.nbytes)),
        constant_tensors=tuple(sorted(constant_tensors, key=lambda t: -t.nbytes)),
        flops_per_row=flops_one,
        batch_independent_flops=max(2 * flops_one - flops_two, 0),
        heaviest_nodes=tuple(sorted(node_flops, key=lambda n: -n.flops)[:3]),
        weight_bytes=_weight_bytes(model.graph),
        unsized=tuple(unsized),
    )


_Typed = Mapping[str, tuple[tuple[int, ...], int]]
"""Tensor name -> (fully known shape, element type)."""


def _infer(model: onnx.ModelProto, rows: int) -> _Typed:
    """Every main-graph tensor whose shape is fully known at `rows` rows, with its element type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(
            _skeleton(model, rows), check_type=False, strict_mode=False, data_prop=True
        )
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        raise ModelRejected(
            f"The sizes of the model's tensors could not be worked out: {' '.join(str(error).split())[:300]}. "
            "Check it with onnx.shape_inference.infer_shapes(model, strict_mode=True) and re-export."
        ) from None
    graph = inferred.graph
    known: dict[str, tuple[tuple[int, ...], int]] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
            continue
        dims = tensor.shape.dim
        if all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
            known[value.name] = (tuple(d.dim_value for d in dims), tensor.elem_type)
    return known


def _skeleton(model: onnx.ModelProto, rows: int) -> onnx.ModelProto:
    """The model with large tensors reduced to typed inputs and every input's batch axis set to `rows`.

    Inference then reads kilobytes, not the weights, and what it infers is concrete enough to add up.
    Declared intermediate and output shapes are left out so that only inference speaks.
    """
    source = model.graph
    skeleton = onnx.ModelProto(ir_version=model.ir_version)
    skeleton.opset_import.extend(model.opset_import)
    graph = skeleton.graph
    for value in source.input:
        batch = graph.input.add()
        batch.CopyFrom(value)
        dims = batch.type.tensor_type.shape.dim
        if batch.type.HasField("tensor_type") and len(dims) > 0 and not dims[0].HasField("dim_value"):
            dims[0].dim_value = rows
    for tensor in source.initializer:
        if math.prod(tensor.dims) <= _SHAPE_DATA_ELEMENTS and tensor.data_location != TensorProto.EXTERNAL:
            graph.initializer.add().CopyFrom(tensor)
        else:
            _typed_input(graph, tensor.name, tensor.data_type, tensor.dims)
    for sparse in source.sparse_initializer:
        _typed_input(graph, sparse.values.name, sparse.values.data_type, sparse.dims)
    for node in source.node:
        large = _large_constant(node)
        if large is not None:
            _typed_input(graph, node.output[0], large.data_type, large.dims)
        else:
            graph.node.add().CopyFrom(node)
    for value in source.output:
        graph.output.append(helper.make_tensor_value_info(value.name, value.type.tensor_type.elem_type, None))
    return skeleton


def _typed_input(graph: onnx.GraphProto, name: str, data_type: int, dims: Iterable[int]) -> None:
    graph.input.append(helper.make_tensor_value_info(name, data_type, list(dims)))


def _large_constant(node: onnx.NodeProto) -> TensorProto | None:
    if not _is_constant(node):
        return None
    for attr in node.attribute:
        if attr.name == "value" and attr.HasField("t") and math.prod(attr.t.dims) > _SHAPE_DATA_ELEMENTS:
            return attr.t
    return None


def _weight_bytes(graph: onnx.GraphProto) -> int:
    values = [attr.t for node in graph.node if _is_constant(node) for attr in node.attribute if attr.HasField("t")]
    return sum(_nbytes(tuple(t.dims), t.data_type) for t in (*graph.initializer, *values))


def _is_constant(node: onnx.NodeProto) -> bool:
    return node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS


def _flops(node: onnx.NodeProto, known: _Typed) -> int:
    """Multiply-adds count two; everything else one operation per element read or written."""
    shapes = {name: known[name][0] for name in (*node.input, *node.output) if name in known}
    inputs = [shapes.get(name) for name in node.input]
    outputs = [shapes.get(name) for name in node.output]
    first_in = inputs[0] if inputs else None
    out = outputs[0] if outputs else None
    standard = node.domain in DEFAULT_DOMAINS
    if standard and out is not None and first_in is not None:
        reduced = _reduced_size(node, first_in, inputs)
        if reduced is not None:
            return 2 * math.prod(out) * reduced
    if standard and node.op_type == "ConvTranspose" and first_in is not None and len(inputs) > 1 and inputs[1]:
        return 2 * math.prod(first_in) * math.prod(inputs[1][1:])
    if standard and node.op_type == "Einsum" and out is not None:
        return _einsum_flops(node, inputs, out)
    return max(_elements(inputs), _elements(outputs))


def _reduced_size(node: onnx.NodeProto, first: tuple[int, ...], inputs: list[tuple[int, ...] | None]) -> int | None:
    """The length each output element of a matrix product or convolution sums over."""
    if node.op_type in _MATRIX_PRODUCTS and first:
        return first[-1]
    if node.op_type == "Gemm" and len(first) == 2:
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        return first[0] if trans_a else first[1]
    weights = inputs[3] if node.op_type == "QLinearConv" and len(inputs) > 3 else inputs[1] if len(inputs) > 1 else None
    if node.op_type in _CONVOLUTIONS and weights:
        return math.prod(weights[1:])
    return None


def _einsum_flops(node: onnx.NodeProto, inputs: list[tuple[int, ...] | None], out: tuple[int, ...]) -> int:
    """Two operations per point of the product of every index's range; the generic count with ellipses."""
    equation = next((attr.s.decode() for attr in node.attribute if attr.name == "equation"), "")
    terms = equation.replace(" ", "").split("->")[0].split(",")
    if "..." in equation or len(terms) != len(inputs):
        return max(_elements(inputs), math.prod(out))
    ranges: dict[str, int] = {}
    for term, shape in zip(terms, inputs, strict=True):
        if shape is None or len(term) != len(shape):
            return max(_elements(inputs), math.prod(out))
        ranges.update(zip(term, shape, strict=True))
    return 2 * math.prod(ranges.values())


def _elements(shapes: Iterable[tuple[int, ...] | None]) -> int:
    return sum(math.prod(shape) for shape in shapes if shape is not None)


def _nbytes(shape: tuple[int, ...], elem_type: int) -> int:
    """Bytes of a dense tensor; strings and unknown types count 8 bytes an element (a pointer at least)."""
    return (math.prod(shape) * _BITS.get(elem_type, 64) + 7) // 8


def _largest(tensors: tuple[TensorCost, ...]) -> str:
    """Up to three of the tensors (sorted largest first), leaving out any too small to matter."""
    total = sum(t.nbytes for t in tensors)
    return "; ".join(t.describe() for t in tensors[:3] if 100 * t.nbytes >= total)


def _setting(field: str) -> str:
    return f"(intake limit {field}; on the server FUSEBOX_{field.upper()})"
