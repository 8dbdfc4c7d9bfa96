"""The op table: one small torch function per ONNX operator of the default domain.

An op function takes the node (its attributes, opset and output count) and the node's input tensors
in ONNX order - None for an omitted optional input, trailing omitted inputs not passed at all - and
returns one tensor or a tuple of tensors in output order. Everything is plain differentiable torch,
so gradients reach whatever float tensors flow in (an embedding table read by Gather included).

Inputs that ONNX defines as shapes, axes, counts or pads (Reshape's shape, Slice's starts, TopK's K,
...) are read with `.tolist()` when the node runs: they are computed from the tensors actually fed,
so a dynamic batch size is never baked into a constant. Where an operator moved a setting from an
attribute to an input across opsets (Squeeze axes, ReduceX axes, Split sizes, ...), both forms are read.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import AttributeProto, TensorProto, helper, numpy_helper

Tensor = torch.Tensor
OpResult = Tensor | tuple[Tensor, ...]
OpFunction = Callable[..., OpResult]
OpFunctionT = TypeVar("OpFunctionT", bound=OpFunction)

DTYPES: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.INT8: torch.int8,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.UINT8: torch.uint8,
    TensorProto.UINT16: torch.uint16,
    TensorProto.UINT32: torch.uint32,
    TensorProto.UINT64: torch.uint64,
    TensorProto.BOOL: torch.bool,
}
"""ONNX element types that have a torch dtype (strings, complex and 8/4-bit floats do not here)."""


def torch_dtype(onnx_type: int) -> torch.dtype:
    """The torch dtype of an ONNX element type, or a ValueError that names the type."""
    if onnx_type not in DTYPES:
        raise ValueError(f"ONNX element type {TensorProto.DataType.Name(onnx_type)} has no torch equivalent here")
    return DTYPES[onnx_type]


def tensor_from_proto(proto: TensorProto) -> Tensor:
    """A torch copy of an ONNX tensor (an initializer or a tensor attribute)."""
    dtype = torch_dtype(proto.data_type)
    array = numpy_helper.to_array(proto)
    if dtype is torch.bfloat16:  # numpy has no bfloat16: go through float32, which holds it exactly
        array = array.astype(np.float32)
    return torch.from_numpy(np.array(array)).to(dtype)


def tensor_to_array(tensor: Tensor) -> np.ndarray:
    """A numpy copy of a tensor, with the numpy dtype that ONNX uses for its element type."""
    tensor = tensor.detach().cpu()
    if tensor.dtype is torch.bfloat16:
        return tensor.float().numpy().astype(helper.tensor_dtype_to_np_dtype(TensorProto.BFLOAT16))
    return tensor.numpy().copy()


def node_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values: tensors as torch tensors, strings decoded."""
    attributes: dict[str, Any] = {}
    for attribute in node.attribute:
        if attribute.type == AttributeProto.TENSOR:
            value: Any = tensor_from_proto(attribute.t)
        else:
            value = helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, list) and value and isinstance(value[0], bytes):
                value = [item.decode() for item in value]
        attributes[attribute.name] = value
    return attributes


@dataclass(frozen=True)
class Node:
    """What an op function needs to know about its node besides the input tensors."""

    op_type: str
    opset: int
    num_outputs: int = 1
    attributes: dict[str, Any] = field(default_factory=dict)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attributes.get(name, default)


_TABLE: dict[str, OpFunction] = {}


def register(op_type: str) -> Callable[[OpFunctionT], OpFunctionT]:
    """Decorator: make the function the table's entry for an op type (it keeps its own signature)."""

    def decorate(function: OpFunctionT) -> OpFunctionT:
        _TABLE[op_type] = function
        return function

    return decorate


def op_function(op_type: str) -> OpFunction:
    """The table's function for a default-domain op type (KeyError when it has none)."""
    return _TABLE[op_type]


def _ints(tensor: Tensor) -> list[int]:
    """The values of a small integer tensor (a shape, axes, pads...) as Python ints."""
    return [int(value) for value in tensor.reshape(-1).tolist()]


def _axes(node: Node, axes: Tensor | None) -> list[int] | None:
    """Axes from the input (newer opsets) or from the attribute (older ones); None when neither is given."""
    return _ints(axes) if axes is not None else node.attr("axes")


def _axis(node: Node, rank: int, default: int = 0) -> int:
    """The node's `axis` attribute as a non-negative dimension of a tensor of the given rank."""
    axis = node.attr("axis", default)
    return axis + rank if axis < 0 else axis


# ---------------------------------------------------------------- element-wise


_UNARY: dict[str, Callable[[Tensor], Tensor]] = {
    "Abs": torch.abs,
    "Acos": torch.acos,
    "Acosh": torch.acosh,
    "Asin": torch.asin,
    "Asinh": torch.asinh,
    "Atan": torch.atan,
    "Atanh": torch.atanh,
    "Ceil": torch.ceil,
    "Cos": torch.cos,
    "Cosh": torch.cosh,
    "Erf": torch.erf,
    "Exp": torch.exp,
    "Floor": torch.floor,
    "HardSwish": F.hardswish,
    "Identity": lambda x: x,
    "IsNaN": torch.isnan,
    "Log": torch.log,
    "Mish": F.mish,
    "Neg": torch.neg,
    "Not": torch.logical_not,
    "Reciprocal": torch.reciprocal,
    "Relu": torch.relu,
    "Round": torch.round,  # half to even, as ONNX specifies
    "Sigmoid": torch.sigmoid,
    "Sign": torch.sign,
    "Sin": torch.sin,
    "Sinh": torch.sinh,
    "Softplus": F.softplus,
    "Softsign": F.softsign,
    "Sqrt": torch.sqrt,
    "Tan": torch.tan,
    "Tanh": torch.tanh,
}

_BINARY: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Add": torch.add,
    "And": torch.logical_and,
    "Equal": torch.eq,
    "Greater": torch.gt,
    "GreaterOrEqual": torch.ge,
    "Less": torch.lt,
    "LessOrEqual": torch.le,
    "Mul": torch.mul,
    "Or": torch.logical_or,
    "Sub": torch.sub,
    "Xor": torch.logical_xor,
}


def _unary(function: Callable[[Tensor], Tensor]) -> OpFunction:
    return lambda node, x: function(x)


def _binary(function: Callable[[Tensor, Tensor], Tensor]) -> OpFunction:
    return lambda node, a, b: function(a, b)


for _op_type, _unary_function in _UNARY.items():
    register(_op_type)(_unary(_unary_function))
for _op_type, _binary_function in _BINARY.items():
    register(_op_type)(_binary(_binary_function))


@register("Div")
def div(node: Node, a: Tensor, b: Tensor) -> Tensor:
    """Integer division truncates toward zero, as in ONNX Runtime (C++ semantics), not floors."""
    return torch.div(a, b, rounding_mode=None if a.is_floating_point() else "trunc")


@register("Mod")
def mod(node: Node, a: Tensor, b: Tensor) -> Tensor:
    """fmod=0: the result takes the divisor's sign (Python's %); fmod=1: the dividend's (C fmod)."""
    return torch.fmod(a, b) if node.attr("fmod", 0) else torch.remainder(a, b)


@register("Pow")
def pow_(node: Node, base: Tensor, exponent: Tensor) -> Tensor:
    """The result has the base's type, whatever the exponent's."""
    return torch.pow(base, exponent).to(base.dtype)


@register("Max")
def max_(node: Node, *xs: Tensor) -> Tensor:
    return functools.reduce(torch.maximum, xs)


@register("Min")
def min_(node: Node, *xs: Tensor) -> Tensor:
    return functools.reduce(torch.minimum, xs)


@register("Sum")
def sum_(node: Node, *xs: Tensor) -> Tensor:
    return functools.reduce(torch.add, xs)


@register("Mean")
def mean(node: Node, *xs: Tensor) -> Tensor:
    return functools.reduce(torch.add, xs) / len(xs)


@register("Where")
def where(node: Node, condition: Tensor, x: Tensor, y: Tensor) -> Tensor:
    return torch.where(condition, x, y)


@register("IsInf")
def is_inf(node: Node, x: Tensor) -> Tensor:
    found = torch.zeros_like(x, dtype=torch.bool)
    if node.attr("detect_positive", 1):
        found = found | torch.isposinf(x)
    if node.attr("detect_negative", 1):
        found = found | torch.isneginf(x)
    return found


@register("Clip")
def clip(node: Node, x: Tensor, low: Tensor | None = None, high: Tensor | None = None) -> Tensor:
    if low is None and high is None:
        return x
    return torch.clamp(x, low, high)


@register("Cast")
def cast(node: Node, x: Tensor) -> Tensor:
    return x.to(torch_dtype(node.attr("to")))


@register("CastLike")
def cast_like(node: Node, x: Tensor, target: Tensor) -> Tensor:
    return x.to(target.dtype)


# ---------------------------------------------------------------- activations


@register("Celu")
def celu(node: Node, x: Tensor) -> Tensor:
    return F.celu(x, node.attr("alpha", 1.0))


@register("Elu")
def elu(node: Node, x: Tensor) -> Tensor:
    return F.elu(x, node.attr("alpha", 1.0))


@register("Gelu")
def gelu(node: Node, x: Tensor) -> Tensor:
    return F.gelu(x, approximate=node.attr("approximate", "none"))


@register("HardSigmoid")
def hard_sigmoid(node: Node, x: Tensor) -> Tensor:
    """ONNX's slope and offset are attributes (torch's hardsigmoid fixes them at 1/6 and 1/2)."""
    return torch.clamp(x * node.attr("alpha", 0.2) + node.attr("beta", 0.5), 0.0, 1.0)


@register("LeakyRelu")
def leaky_relu(node: Node, x: Tensor) -> Tensor:
    return F.leaky_relu(x, node.attr("alpha", 0.01))


@register("PRelu")
def prelu(node: Node, x: Tensor, slope: Tensor) -> Tensor:
    """Written out: ONNX broadcasts the slope numpy-style, F.prelu wants it per channel."""
    return torch.where(x < 0, x * slope, x)


@register("Selu")
def selu(node: Node, x: Tensor) -> Tensor:
    alpha = node.attr("alpha", 1.67326319217681884765625)
    gamma = node.attr("gamma", 1.05070102214813232421875)
    return gamma * torch.where(x > 0, x, alpha * torch.expm1(x))


@register("ThresholdedRelu")
def thresholded_relu(node: Node, x: Tensor) -> Tensor:
    return torch.where(x > node.attr("alpha", 1.0), x, torch.zeros_like(x))


def _coerced_softmax(function: Callable[..., Tensor]) -> OpFunction:
    """Softmax and LogSoftmax: over one axis since opset 13; before, over the tensor flattened to 2-D at axis."""

    def run(node: Node, x: Tensor) -> Tensor:
        if node.opset >= 13:
            return function(x, dim=node.attr("axis", -1))
        axis = _axis(node, x.dim(), default=1)
        return function(x.reshape(math.prod(x.shape[:axis]), -1), dim=1).reshape(x.shape)

    return run


register("Softmax")(_coerced_softmax(F.softmax))
register("LogSoftmax")(_coerced_softmax(F.log_softmax))


# ---------------------------------------------------------------- linear algebra and normalisation


@register("MatMul")
def matmul(node: Node, a: Tensor, b: Tensor) -> Tensor:
    return torch.matmul(a, b)


@register("Gemm")
def gemm(node: Node, a: Tensor, b: Tensor, c: Tensor | None = None) -> Tensor:
    alpha, beta = node.attr("alpha", 1.0), node.attr("beta", 1.0)
    a = a.t() if node.attr("transA", 0) else a
    b = b.t() if node.attr("transB", 0) else b
    if c is None:
        return a @ b * alpha if alpha != 1.0 else a @ b
    return torch.addmm(c, a, b, beta=beta, alpha=alpha)


@register("Einsum")
def einsum(node: Node, *xs: Tensor) -> Tensor:
    return torch.einsum(node.attr("equation").replace(" ", ""), *xs)


@register("BatchNormalization")
def batch_normalization(node: Node, x: Tensor, scale: Tensor, bias: Tensor, mean: Tensor, variance: Tensor) -> Tensor:
    """Inference mode, written out so that every input (running statistics included) can take gradients."""
    if node.attr("training_mode", 0):
        raise NotImplementedError("BatchNormalization with training_mode=1 is not supported (inference only)")
    channel_shape = (-1,) + (1,) * (x.dim() - 2)
    inv_std = torch.rsqrt(variance + node.attr("epsilon", 1e-5))
    return (x - mean.reshape(channel_shape)) * (inv_std * scale).reshape(channel_shape) + bias.reshape(channel_shape)


@register("LayerNormalization")
def layer_normalization(node: Node, x: Tensor, scale: Tensor, bias: Tensor | None = None) -> OpResult:
    """Normalise over axis..last; statistics in float32 when stash_type is 1 (the default)."""
    dims = tuple(range(_axis(node, x.dim(), default=-1), x.dim()))
    stats = x.float() if node.attr("stash_type", 1) == 1 else x
    mean = stats.mean(dims, keepdim=True)
    centered = stats - mean
    inv_std = torch.rsqrt(centered.square().mean(dims, keepdim=True) + node.attr("epsilon", 1e-5))
    y = (centered * inv_std).to(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return (y, mean, inv_std)[: node.num_outputs]


@register("Dropout")
def dropout(node: Node, x: Tensor, ratio: Tensor | None = None, training_mode: Tensor | None = None) -> OpResult:
    """Inference: the identity, with an all-true mask when the mask output is asked for."""
    return (x, torch.ones_like(x, dtype=torch.bool))[: node.num_outputs]


# ---------------------------------------------------------------- reductions


def _reduction(function: Callable[[Tensor, tuple[int, ...], bool], Tensor]) -> OpFunction:
    """The ReduceX family: axes from the input or the attribute; none means all axes, or none at all
    when noop_with_empty_axes is set - which still applies the element-wise part (ReduceL1 of x is |x|),
    as ONNX Runtime does: reducing over a new axis of size one gives just that."""

    def run(node: Node, x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = _axes(node, axes)
        if not dims:
            if node.attr("noop_with_empty_axes", 0):
                return function(x.unsqueeze(0), (0,), False)
            dims = list(range(x.dim()))
        return function(x, tuple(d + x.dim() if d < 0 else d for d in dims), bool(node.attr("keepdims", 1)))

    return run


def _reduce_prod(x: Tensor, dims: tuple[int, ...], keepdim: bool) -> Tensor:
    """torch.prod takes one dimension at a time: go from the last so the earlier ones keep their index."""
    for dim in sorted(dims, reverse=True):
        x = x.prod(dim, keepdim=keepdim)
    return x


_REDUCTIONS: dict[str, Callable[[Tensor, tuple[int, ...], bool], Tensor]] = {
    "ReduceL1": lambda x, dims, keep: x.abs().sum(dims, keepdim=keep),
    "ReduceL2": lambda x, dims, keep: torch.linalg.vector_norm(x, 2, dim=dims, keepdim=keep),
    "ReduceLogSum": lambda x, dims, keep: x.sum(dims, keepdim=keep).log(),
    "ReduceLogSumExp": lambda x, dims, keep: torch.logsumexp(x, dims, keepdim=keep),
    "ReduceMax": lambda x, dims, keep: x.amax(dims, keepdim=keep),
    "ReduceMean": lambda x, dims, keep: x.mean(dims, keepdim=keep),
    "ReduceMin": lambda x, dims, keep: x.amin(dims, keepdim=keep),
    "ReduceProd": _reduce_prod,
    "ReduceSum": lambda x, dims, keep: x.sum(dims, keepdim=keep),
    "ReduceSumSquare": lambda x, dims, keep: x.square().sum(dims, keepdim=keep),
}

for _op_type, _reduce in _REDUCTIONS.items():
    register(_op_type)(_reduction(_reduce))


def _arg_reduction(function: Callable[..., Tensor]) -> OpFunction:
    """ArgMax and ArgMin: torch picks the first of equal values; select_last_index picks the last."""

    def run(node: Node, x: Tensor) -> Tensor:
        axis, keepdim = _axis(node, x.dim()), bool(node.attr("keepdims", 1))
        if node.attr("select_last_index", 0):
            return x.shape[axis] - 1 - function(x.flip(axis), dim=axis, keepdim=keepdim)
        return function(x, dim=axis, keepdim=keepdim)

    return run


register("ArgMax")(_arg_reduction(torch.argmax))
register("ArgMin")(_arg_reduction(torch.argmin))


@register("CumSum")
def cumsum(node: Node, x: Tensor, axis: Tensor) -> Tensor:
    dim = int(axis)
    reverse = node.attr("reverse", 0)
    if reverse:
        x = x.flip(dim)
    y = torch.cumsum(x, dim)
    if node.attr("exclusive", 0):  # shift by one rather than subtract x, which would round differently
        y = torch.cat([torch.zeros_like(x.narrow(dim, 0, 1)), y.narrow(dim, 0, x.shape[dim] - 1)], dim)
    return y.flip(dim) if reverse else y


@register("TopK")
def top_k(node: Node, x: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """A stable sort, so that equal values come lowest index first as in ONNX Runtime."""
    axis = node.attr("axis", -1)
    values, indices = torch.sort(x, dim=axis, descending=bool(node.attr("largest", 1)), stable=True)
    count = _ints(k)[0]
    return values.narrow(axis, 0, count), indices.narrow(axis, 0, count)


# ---------------------------------------------------------------- shapes


@register("Shape")
def shape(node: Node, x: Tensor) -> Tensor:
    """Python slicing clamps start and end exactly as the spec asks."""
    dims = x.shape[slice(node.attr("start", 0), node.attr("end"))]
    return torch.tensor(dims, dtype=torch.int64, device=x.device)


@register("Size")
def size(node: Node, x: Tensor) -> Tensor:
    return torch.tensor(x.numel(), dtype=torch.int64, device=x.device)


@register("Reshape")
def reshape(node: Node, x: Tensor, shape: Tensor) -> Tensor:
    """A 0 copies the input's dimension unless allowzero is set; -1 is inferred."""
    target = _ints(shape)
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if dim == 0 else dim for i, dim in enumerate(target)]
    return x.reshape(target)


@register("Flatten")
def flatten(node: Node, x: Tensor) -> Tensor:
    axis = _axis(node, x.dim(), default=1)
    return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))


@register("Squeeze")
def squeeze(node: Node, x: Tensor, axes: Tensor | None = None) -> Tensor:
    dims = _axes(node, axes)
    return x.squeeze() if dims is None else x.squeeze(tuple(dims))


@register("Unsqueeze")
def unsqueeze(node: Node, x: Tensor, axes: Tensor | None = None) -> Tensor:
    """Negative axes count from the end of the output."""
    dims = _axes(node, axes)
    if dims is None:
        raise ValueError("Unsqueeze needs axes, as an input (opset 13+) or an attribute (earlier opsets)")
    rank = x.dim() + len(dims)
    for dim in sorted(d % rank for d in dims):
        x = x.unsqueeze(dim)
    return x


@register("Transpose")
def transpose(node: Node, x: Tensor) -> Tensor:
    return x.permute(node.attr("perm", list(reversed(range(x.dim())))))


@register("Expand")
def expand(node: Node, x: Tensor, shape: Tensor) -> Tensor:
    """Broadcasting both ways: a 1 in the shape keeps the input's dimension."""
    return x.expand(torch.broadcast_shapes(x.shape, tuple(_ints(shape))))


@register("Tile")
def tile(node: Node, x: Tensor, repeats: Tensor) -> Tensor:
    return x.repeat(_ints(repeats))


@register("Concat")
def concat(node: Node, *xs: Tensor) -> Tensor:
    return torch.cat(xs, dim=node.attr("axis"))


@register("Split")
def split(node: Node, x: Tensor, sizes: Tensor | None = None) -> tuple[Tensor, ...]:
    """Sizes from the input (opset 13+) or attribute; else equal parts, the last one smaller if need be."""
    axis = node.attr("axis", 0)
    split_sizes = _ints(sizes) if sizes is not None else node.attr("split")
    if split_sizes is None:
        parts = node.attr("num_outputs", node.num_outputs)
        return torch.split(x, -(-x.shape[axis] // parts), dim=axis)
    return torch.split(x, split_sizes, dim=axis)


@register("Slice")
def slice_(
    node: Node,
    x: Tensor,
    starts: Tensor,
    ends: Tensor,
    axes: Tensor | None = None,
    steps: Tensor | None = None,
) -> Tensor:
    """Python's slice.indices clamps starts and ends as the spec asks, for both step signs."""
    start_list, end_list = _ints(starts), _ints(ends)
    axis_list = _ints(axes) if axes is not None else list(range(len(start_list)))
    step_list = _ints(steps) if steps is not None else [1] * len(start_list)
    for start, end, axis, step in zip(start_list, end_list, axis_list, step_list, strict=True):
        dim = axis + x.dim() if axis < 0 else axis
        first, stop, stride = slice(start, end, step).indices(x.shape[dim])
        if stride > 0:
            x = x[(slice(None),) * dim + (slice(first, stop, stride),)]
        else:  # torch slicing has no negative steps
            x = x.index_select(dim, torch.arange(first, stop, stride, device=x.device))
    return x


@register("Pad")
def pad(
    node: Node,
    x: Tensor,
    pads: Tensor,
    constant_value: Tensor | None = None,
    axes: Tensor | None = None,
) -> Tensor:
    """Constant mode through F.pad (any rank, negative pads crop); edge, reflect and wrap by indexing."""
    dims = [d + x.dim() if d < 0 else d for d in _ints(axes)] if axes is not None else list(range(x.dim()))
    amounts = _ints(pads)
    widths = dict.fromkeys(range(x.dim()), (0, 0))
    widths.update({dim: (amounts[i], amounts[i + len(dims)]) for i, dim in enumerate(dims)})
    mode = node.attr("mode", "constant")
    if mode == "constant":
        value = constant_value.item() if constant_value is not None and constant_value.numel() else 0
        return F.pad(x, [w for dim in reversed(range(x.dim())) for w in widths[dim]], value=value)
    for dim, (before, after) in widths.items():
        if before or after:
            x = x.index_select(dim, _pad_indices(mode, x.shape[dim], before, after, x.device))
    return x


def _pad_indices(mode: str, size: int, before: int, after: int, device: torch.device) -> Tensor:
    """Where each padded position along one axis reads from, for the non-constant pad modes."""
    positions = torch.arange(-before, size + after, device=device)
    if mode == "edge":
        return positions.clamp(0, size - 1)
    if mode == "wrap":
        return positions % size
    if mode == "reflect":
        period = 2 * (size - 1)
        folded = positions % period
        return torch.where(folded < size, folded, period - folded)
    raise NotImplementedError(f"Pad mode {mode!r} is not supported")


@register("ConstantOfShape")
def constant_of_shape(node: Node, shape: Tensor) -> Tensor:
    value = node.attr("value", torch.zeros(1))
    return torch.full(_ints(shape), value.item(), dtype=value.dtype, device=shape.device)


@register("Range")
def range_(node: Node, start: Tensor, limit: Tensor, delta: Tensor) -> Tensor:
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=start.dtype, device=start.device)


@register("Trilu")
def trilu(node: Node, x: Tensor, k: Tensor | None = None) -> Tensor:
    diagonal = int(k) if k is not None else 0
    return torch.triu(x, diagonal) if node.attr("upper", 1) else torch.tril(x, diagonal)


@register("Constant")
def constant(node: Node) -> Tensor:
    [(name, value)] = node.attributes.items()
    if name == "value":
        return value
    if name in ("value_float", "value_floats"):
        return torch.tensor(value, dtype=torch.float32)
    if name in ("value_int", "value_ints"):
        return torch.tensor(value, dtype=torch.int64)
    raise NotImplementedError(f"Constant with attribute {name!r} is not supported")


# ---------------------------------------------------------------- indexing


@register("Gather")
def gather(node: Node, data: Tensor, indices: Tensor) -> Tensor:
    """Advanced indexing: negative indices wrap, and the gradient reaches the table."""
    return data[(slice(None),) * _axis(node, data.dim()) + (indices.long(),)]


@register("GatherElements")
def gather_elements(node: Node, data: Tensor, indices: Tensor) -> Tensor:
    axis = _axis(node, data.dim())
    indices = indices.long()
    return torch.gather(data, axis, torch.where(indices < 0, indices + data.shape[axis], indices))


@register("GatherND")
def gather_nd(node: Node, data: Tensor, indices: Tensor) -> Tensor:
    """Flatten the batch dimensions into one, then index with one index tensor per coordinate."""
    batch_dims = node.attr("batch_dims", 0)
    depth = indices.shape[-1]
    batch = math.prod(data.shape[:batch_dims])
    flat_indices = indices.long().reshape(batch, -1, depth)
    rows = torch.arange(batch, device=data.device).unsqueeze(1)
    gathered = data.reshape(batch, *data.shape[batch_dims:])[(rows, *flat_indices.unbind(-1))]
    return gathered.reshape(*indices.shape[:-1], *data.shape[batch_dims + depth :])


@register("ScatterND")
def scatter_nd(node: Node, data: Tensor, indices: Tensor, updates: Tensor) -> Tensor:
    """Out of place: rows of data flattened over the indexed dimensions, replaced or reduced into."""
    depth = indices.shape[-1]
    indexed = data.shape[:depth]
    strides = torch.tensor([math.prod(indexed[i + 1 :]) for i in range(depth)], device=data.device)
    coordinates = indices.long().reshape(-1, depth)
    coordinates = torch.where(coordinates < 0, coordinates + torch.tensor(indexed, device=data.device), coordinates)
    rows = (coordinates * strides).sum(-1)
    flat = data.reshape(math.prod(indexed), *data.shape[depth:])
    flat_updates = updates.reshape(-1, *data.shape[depth:])
    reduction = node.attr("reduction", "none")
    if reduction == "none":
        out = flat.index_copy(0, rows, flat_updates)
    elif reduction == "add":
        out = flat.index_add(0, rows, flat_updates)
    else:
        index = rows.reshape(-1, *(1,) * (flat.dim() - 1)).expand_as(flat_updates)
        out = flat.scatter_reduce(0, index, flat_updates, {"mul": "prod", "max": "amax", "min": "amin"}[reduction])
    return out.reshape(data.shape)


@register("OneHot")
def one_hot(node: Node, indices: Tensor, depth: Tensor, values: Tensor) -> Tensor:
    """Negative indices count from depth; out-of-range ones give an all-off row."""
    count = int(depth.reshape(-1)[0])
    indices = indices.long()
    indices = torch.where(indices < 0, indices + count, indices)
    hot = indices.unsqueeze(-1) == torch.arange(count, device=indices.device)
    return torch.where(hot, values[1], values[0]).movedim(-1, node.attr("axis", -1))


@register("NonZero")
def non_zero(node: Node, x: Tensor) -> Tensor:
    return torch.nonzero(x).t()


SUPPORTED_OPS: frozenset[str] = frozenset(_TABLE)
"""Default-domain ONNX op types the table implements."""
