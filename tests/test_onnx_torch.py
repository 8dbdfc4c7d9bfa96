"""The ONNX -> torch interpreter against ONNX Runtime: every op on tiny graphs, then whole exported models."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from fusion.onnx_torch import SUPPORTED_OPS, OnnxGraphModule, UnsupportedModelError
from fusion.onnx_torch.ops import tensor_to_array

TOLERANCE = 1e-5
INT64_MAX = np.iinfo(np.int64).max

rng = np.random.default_rng(0)


def floats(*shape: int, scale: float = 1.0, low: float | None = None) -> np.ndarray:
    """Standard normal floats, or uniform in [low, low + scale) when low is given."""
    values = rng.standard_normal(shape) * scale if low is None else low + rng.random(shape) * scale
    return values.astype(np.float32)


def ints(*values: int | list) -> np.ndarray:
    return np.array(values[0] if len(values) == 1 else values, dtype=np.int64)


def make_model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, np.ndarray],
    opset: int,
    initializers: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto:
    """A one-graph model whose outputs are the last node's outputs, typed by ONNX shape inference."""
    graph = helper.make_graph(
        nodes,
        "case",
        [
            helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)
            for name, array in inputs.items()
        ],
        [onnx.ValueInfoProto(name=name) for name in nodes[-1].output if name],
        initializer=[numpy_helper.from_array(array, name) for name, array in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def assert_close(actual: torch.Tensor, expected: np.ndarray, name: str) -> None:
    array = tensor_to_array(actual)
    assert array.dtype == expected.dtype, f"{name}: dtype {array.dtype}, ONNX Runtime {expected.dtype}"
    assert array.shape == expected.shape, f"{name}: shape {array.shape}, ONNX Runtime {expected.shape}"
    if np.issubdtype(expected.dtype, np.floating):
        np.testing.assert_allclose(array, expected, rtol=0, atol=TOLERANCE, equal_nan=True, err_msg=name)
    else:
        np.testing.assert_array_equal(array, expected, err_msg=name)


def case(
    case_id: str,
    nodes: onnx.NodeProto | list[onnx.NodeProto],
    inputs: dict[str, np.ndarray],
    opset: int = 21,
    **initializers: np.ndarray,
) -> object:
    nodes = nodes if isinstance(nodes, list) else [nodes]
    return pytest.param(nodes, inputs, opset, initializers, id=case_id)


node = helper.make_node

_UNARY_INPUTS: dict[str, np.ndarray] = {
    "Abs": floats(3, 4),
    "Acos": floats(3, 4, low=-0.9, scale=1.8),
    "Acosh": floats(3, 4, low=1.1, scale=3.0),
    "Asin": floats(3, 4, low=-0.9, scale=1.8),
    "Asinh": floats(3, 4),
    "Atan": floats(3, 4),
    "Atanh": floats(3, 4, low=-0.9, scale=1.8),
    "Ceil": floats(3, 4, scale=3.0),
    "Cos": floats(3, 4),
    "Cosh": floats(3, 4),
    "Erf": floats(3, 4),
    "Exp": floats(3, 4),
    "Floor": floats(3, 4, scale=3.0),
    "HardSwish": floats(3, 4, scale=4.0),
    "Identity": floats(3, 4),
    "IsNaN": np.array([1.0, np.nan, -np.inf, 0.0], np.float32),
    "IsInf": np.array([1.0, np.nan, -np.inf, np.inf], np.float32),
    "Log": floats(3, 4, low=0.1, scale=5.0),
    "Mish": floats(3, 4, scale=3.0),
    "Neg": floats(3, 4),
    "Not": np.array([True, False, True]),
    "Reciprocal": floats(3, 4, low=0.5, scale=2.0),
    "Relu": floats(3, 4),
    "Round": np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.4, -0.6], np.float32),
    "Sigmoid": floats(3, 4, scale=3.0),
    "Sign": np.array([-2.0, 0.0, 3.0], np.float32),
    "Sin": floats(3, 4),
    "Sinh": floats(3, 4),
    "Softplus": floats(3, 4, scale=3.0),
    "Softsign": floats(3, 4, scale=3.0),
    "Sqrt": floats(3, 4, low=0.0, scale=4.0),
    "Tan": floats(3, 4, low=-1.2, scale=2.4),
    "Tanh": floats(3, 4, scale=2.0),
}

a34, b4 = floats(3, 4), floats(4)
signed = ints([-7, 7, -7, 7, 0, 5])
divisor = ints([2, 2, -2, -2, 3, -3])

CASES = [
    *(case(op, node(op, ["x"], ["y"]), {"x": x}) for op, x in _UNARY_INPUTS.items()),
    case("Abs-int", node("Abs", ["x"], ["y"]), {"x": signed}),
    case("Neg-int", node("Neg", ["x"], ["y"]), {"x": signed}),
    case("Relu-int32", node("Relu", ["x"], ["y"]), {"x": signed.astype(np.int32)}),
    case("Sign-int", node("Sign", ["x"], ["y"]), {"x": signed}),
    case("IsInf-positive", node("IsInf", ["x"], ["y"], detect_negative=0), {"x": _UNARY_INPUTS["IsInf"]}),
    case("IsInf-negative", node("IsInf", ["x"], ["y"], detect_positive=0), {"x": _UNARY_INPUTS["IsInf"]}),
    *(case(f"{op}-broadcast", node(op, ["a", "b"], ["y"]), {"a": a34, "b": b4}) for op in ("Add", "Sub", "Mul")),
    case("Div", node("Div", ["a", "b"], ["y"]), {"a": a34, "b": floats(3, 1, low=0.5)}),
    case("Div-int-truncates", node("Div", ["a", "b"], ["y"]), {"a": signed, "b": divisor}),
    case("Mod-int", node("Mod", ["a", "b"], ["y"]), {"a": signed, "b": divisor}),
    case("Mod-int-fmod", node("Mod", ["a", "b"], ["y"], fmod=1), {"a": signed, "b": divisor}),
    case("Mod-float-fmod", node("Mod", ["a", "b"], ["y"], fmod=1), {"a": a34 * 5, "b": floats(4, low=1.0)}),
    case("Pow", node("Pow", ["a", "b"], ["y"]), {"a": floats(3, 4, low=0.1), "b": b4}),
    case("Pow-int-exponent", node("Pow", ["a", "b"], ["y"]), {"a": a34, "b": ints([2, 3, 0, 1])}),
    case("Pow-int", node("Pow", ["a", "b"], ["y"]), {"a": signed, "b": ints([2, 3, 0, 1, 2, 1])}),
    *(
        case(op, node(op, ["a", "b"], ["y"]), {"a": a34, "b": np.where(b4 > 0, a34[0], b4).astype(np.float32)})
        for op in ("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual")
    ),
    case("Equal-int", node("Equal", ["a", "b"], ["y"]), {"a": signed, "b": np.abs(signed)}),
    *(
        case(
            op,
            node(op, ["a", "b"], ["y"]),
            {"a": np.array([True, True, False, False]), "b": np.array([True, False] * 2)},
        )
        for op in ("And", "Or", "Xor")
    ),
    *(
        case(op, node(op, ["a", "b", "c"], ["y"]), {"a": a34, "b": b4, "c": floats(3, 1)})
        for op in ("Max", "Min", "Sum", "Mean")
    ),
    case("Max-one-input", node("Max", ["a"], ["y"]), {"a": a34}),
    case("Min-int", node("Min", ["a", "b"], ["y"]), {"a": signed, "b": divisor}),
    case("Where", node("Where", ["c", "a", "b"], ["y"]), {"c": a34 > 0, "a": a34, "b": b4}),
    case("Clip-none", node("Clip", ["x"], ["y"]), {"x": a34}),
    case("Clip-min", node("Clip", ["x", "lo"], ["y"]), {"x": a34}, lo=np.array(-0.5, np.float32)),
    case("Clip-max", node("Clip", ["x", "", "hi"], ["y"]), {"x": a34}, hi=np.array(0.3, np.float32)),
    case(
        "Clip-both-opset11",
        node("Clip", ["x", "lo", "hi"], ["y"]),
        {"x": a34},
        11,
        lo=np.array(-0.5, np.float32),
        hi=np.array(0.3, np.float32),
    ),
    case("Clip-int", node("Clip", ["x", "lo", "hi"], ["y"]), {"x": signed}, lo=ints(-1), hi=ints(4)),
    *(
        case(f"Cast-float-{name}", node("Cast", ["x"], ["y"], to=to), {"x": a34 * 3})
        for name, to in [
            ("int32", TensorProto.INT32),
            ("int64", TensorProto.INT64),
            ("float16", TensorProto.FLOAT16),
            ("double", TensorProto.DOUBLE),
            ("bool", TensorProto.BOOL),
            ("float", TensorProto.FLOAT),
        ]
    ),
    case("Cast-int-float", node("Cast", ["x"], ["y"], to=TensorProto.FLOAT), {"x": signed}),
    case("Cast-int-bool", node("Cast", ["x"], ["y"], to=TensorProto.BOOL), {"x": signed}),
    case("Cast-bool-int32", node("Cast", ["x"], ["y"], to=TensorProto.INT32), {"x": a34 > 0}),
    case("CastLike", node("CastLike", ["x", "t"], ["y"]), {"x": signed, "t": b4}),
    # activations
    case("Celu", node("Celu", ["x"], ["y"], alpha=0.7), {"x": a34}),
    case("Elu", node("Elu", ["x"], ["y"]), {"x": a34}),
    case("Elu-alpha", node("Elu", ["x"], ["y"], alpha=0.5), {"x": a34}),
    case("Gelu", node("Gelu", ["x"], ["y"]), {"x": a34 * 3}, 20),
    case("Gelu-tanh", node("Gelu", ["x"], ["y"], approximate="tanh"), {"x": a34 * 3}, 20),
    case("HardSigmoid", node("HardSigmoid", ["x"], ["y"]), {"x": a34 * 4}),
    case("HardSigmoid-attrs", node("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4), {"x": a34 * 4}),
    case("LeakyRelu", node("LeakyRelu", ["x"], ["y"]), {"x": a34}),
    case("LeakyRelu-alpha", node("LeakyRelu", ["x"], ["y"], alpha=0.2), {"x": a34}),
    case("PRelu", node("PRelu", ["x", "s"], ["y"]), {"x": a34}, s=floats(4)),
    case("PRelu-scalar-slope", node("PRelu", ["x", "s"], ["y"]), {"x": a34}, s=floats(1)),
    case("Selu", node("Selu", ["x"], ["y"]), {"x": a34}),
    case("Selu-attrs", node("Selu", ["x"], ["y"], alpha=1.5, gamma=0.9), {"x": a34}),
    case("ThresholdedRelu", node("ThresholdedRelu", ["x"], ["y"], alpha=0.5), {"x": a34}),
    case("Softmax", node("Softmax", ["x"], ["y"]), {"x": floats(2, 3, 4)}, 13),
    case("Softmax-axis1", node("Softmax", ["x"], ["y"], axis=1), {"x": floats(2, 3, 4)}, 13),
    case("Softmax-opset11-coerced", node("Softmax", ["x"], ["y"], axis=1), {"x": floats(2, 3, 4)}, 11),
    case("Softmax-opset11-default", node("Softmax", ["x"], ["y"]), {"x": floats(2, 3, 4)}, 11),
    case("LogSoftmax", node("LogSoftmax", ["x"], ["y"]), {"x": floats(2, 3, 4)}),
    case("LogSoftmax-axis0", node("LogSoftmax", ["x"], ["y"], axis=0), {"x": floats(2, 3, 4)}),
    case("LogSoftmax-opset12-coerced", node("LogSoftmax", ["x"], ["y"], axis=1), {"x": floats(2, 3, 4)}, 12),
    # linear algebra, normalisation
    case("MatMul", node("MatMul", ["a", "b"], ["y"]), {"a": a34, "b": floats(4, 5)}),
    case("MatMul-batched", node("MatMul", ["a", "b"], ["y"]), {"a": floats(2, 3, 4), "b": floats(4, 5)}),
    case("MatMul-vector", node("MatMul", ["a", "b"], ["y"]), {"a": b4, "b": floats(4, 5)}),
    case("Gemm", node("Gemm", ["a", "b", "c"], ["y"]), {"a": a34}, b=floats(4, 5), c=floats(5)),
    case(
        "Gemm-transposed",
        node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0),
        {"a": floats(4, 3)},
        b=floats(5, 4),
        c=floats(3, 1),
    ),
    case("Gemm-no-c", node("Gemm", ["a", "b"], ["y"], alpha=1.5), {"a": a34}, b=floats(4, 5)),
    case("Gemm-scalar-c", node("Gemm", ["a", "b", "c"], ["y"]), {"a": a34}, b=floats(4, 5), c=floats(1)),
    case(
        "Einsum-batched",
        node("Einsum", ["a", "b"], ["y"], equation="bij, bjk -> bik"),
        {"a": floats(2, 3, 4), "b": floats(2, 4, 5)},
    ),
    case("Einsum-dot", node("Einsum", ["a", "b"], ["y"], equation="ni,ni->n"), {"a": a34, "b": floats(3, 4)}),
    case(
        "BatchNormalization",
        node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3),
        {"x": a34},
        s=floats(4),
        b=floats(4),
        m=floats(4),
        v=floats(4, low=0.5),
    ),
    case(
        "BatchNormalization-4d-opset14",
        node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
        {"x": floats(2, 3, 4, 5)},
        14,
        s=floats(3),
        b=floats(3),
        m=floats(3),
        v=floats(3, low=0.5),
    ),
    case(
        "LayerNormalization",
        node("LayerNormalization", ["x", "s", "b"], ["y"]),
        {"x": floats(2, 3, 4) * 3},
        17,
        s=floats(4),
        b=floats(4),
    ),
    case(
        "LayerNormalization-axis1-no-bias",
        node("LayerNormalization", ["x", "s"], ["y"], axis=1, epsilon=1e-3),
        {"x": floats(2, 3, 4)},
        s=floats(3, 4),
    ),
    case(
        "LayerNormalization-statistics",
        node("LayerNormalization", ["x", "s", "b"], ["y", "mean", "inv_std"], axis=-2),
        {"x": floats(2, 3, 4)},
        s=floats(3, 4),
        b=floats(4),
    ),
    case("Dropout", node("Dropout", ["x", "r"], ["y"]), {"x": a34}, 13, r=np.array(0.3, np.float32)),
    case("Dropout-mask", node("Dropout", ["x"], ["y", "mask"]), {"x": a34}),
    # reductions
    *(
        case(f"{op}-{form}", node(op, ["x", "axes"][:inputs], ["y"], **attrs), {"x": x}, opset, **inits)
        for op, x in [
            ("ReduceSum", floats(2, 3, 4)),
            ("ReduceMean", floats(2, 3, 4)),
            ("ReduceMax", floats(2, 3, 4)),
            ("ReduceMin", floats(2, 3, 4)),
            ("ReduceProd", floats(2, 3, 4, low=0.5)),
            ("ReduceL1", floats(2, 3, 4)),
            ("ReduceL2", floats(2, 3, 4)),
            ("ReduceLogSum", floats(2, 3, 4, low=0.5)),
            ("ReduceLogSumExp", floats(2, 3, 4)),
            ("ReduceSumSquare", floats(2, 3, 4)),
        ]
        for form, inputs, attrs, opset, inits in [
            ("attribute-opset13", 1, {"axes": [0, -1]}, 13, {}),
            ("input-opset18", 2, {}, 18, {"axes": ints([0, -1])}),
            ("keepdims0", 2, {"keepdims": 0}, 18, {"axes": ints([1])}),
            ("all-axes", 1, {"keepdims": 0}, 18, {}),
            ("noop-empty-axes", 2, {"noop_with_empty_axes": 1}, 18, {"axes": ints([])}),
        ]
        if not (op == "ReduceSum" and form == "attribute-opset13")
    ),
    case("ReduceSum-attribute-opset11", node("ReduceSum", ["x"], ["y"], axes=[1]), {"x": floats(2, 3, 4)}, 11),
    case(
        "ReduceSum-input-opset13", node("ReduceSum", ["x", "axes"], ["y"]), {"x": floats(2, 3, 4)}, 13, axes=ints([1])
    ),
    case("ReduceMax-int", node("ReduceMax", ["x", "axes"], ["y"]), {"x": signed.reshape(2, 3)}, 18, axes=ints([1])),
    case("ArgMax", node("ArgMax", ["x"], ["y"]), {"x": a34}),
    case("ArgMax-last-axis", node("ArgMax", ["x"], ["y"], axis=-1, keepdims=0), {"x": a34}),
    *(
        case(
            f"{op}-ties-{last}",
            node(op, ["x"], ["y"], axis=1, select_last_index=last),
            {"x": ints([[1, 3, 3, 1], [2, 2, 0, 0]])},
        )
        for op in ("ArgMax", "ArgMin")
        for last in (0, 1)
    ),
    case("CumSum", node("CumSum", ["x", "axis"], ["y"]), {"x": a34}, axis=ints(0)),
    case("CumSum-int", node("CumSum", ["x", "axis"], ["y"]), {"x": signed}, axis=ints([0])),
    case("CumSum-exclusive", node("CumSum", ["x", "axis"], ["y"], exclusive=1), {"x": a34}, axis=ints(1)),
    case("CumSum-reverse", node("CumSum", ["x", "axis"], ["y"], reverse=1), {"x": a34}, axis=ints(-1)),
    case(
        "CumSum-exclusive-reverse",
        node("CumSum", ["x", "axis"], ["y"], exclusive=1, reverse=1),
        {"x": a34},
        axis=ints(1),
    ),
    case("TopK", node("TopK", ["x", "k"], ["values", "indices"]), {"x": a34}, k=ints([2])),
    case(
        "TopK-smallest-axis0",
        node("TopK", ["x", "k"], ["values", "indices"], axis=0, largest=0),
        {"x": a34},
        k=ints([2]),
    ),
    case(
        "TopK-ties",
        node("TopK", ["x", "k"], ["values", "indices"]),
        {"x": ints([[1, 3, 3, 1, 3], [2, 2, 0, 0, 2]])},
        k=ints([3]),
    ),
    # shapes
    case("Shape", node("Shape", ["x"], ["y"]), {"x": floats(2, 3, 4)}),
    case("Shape-start", node("Shape", ["x"], ["y"], start=1), {"x": floats(2, 3, 4)}),
    case("Shape-start-end", node("Shape", ["x"], ["y"], start=-2, end=-1), {"x": floats(2, 3, 4)}),
    case("Shape-clamped", node("Shape", ["x"], ["y"], start=-9, end=9), {"x": floats(2, 3, 4)}),
    case("Size", node("Size", ["x"], ["y"]), {"x": floats(2, 3, 4)}),
    case("Reshape", node("Reshape", ["x", "s"], ["y"]), {"x": floats(2, 3, 4)}, s=ints([0, -1])),
    case(
        "Reshape-allowzero",
        node("Reshape", ["x", "s"], ["y"], allowzero=1),
        {"x": floats(2, 3, 4)},
        14,
        s=ints([4, -1, 2]),
    ),
    case(
        "Reshape-allowzero-empty",
        node("Reshape", ["x", "s"], ["y"], allowzero=1),
        {"x": floats(0, 3)},
        14,
        s=ints([3, 0]),
    ),
    case(
        "Reshape-computed-shape",
        [
            node("Shape", ["x"], ["shape"], end=1),
            node("Concat", ["shape", "rest"], ["target"], axis=0),
            node("Reshape", ["x", "target"], ["y"]),
        ],
        {"x": floats(2, 3, 4)},
        rest=ints([-1]),
    ),
    *(
        case(f"Flatten-axis{axis}", node("Flatten", ["x"], ["y"], axis=axis), {"x": floats(2, 3, 4)})
        for axis in (0, 1, 2, 3, -1)
    ),
    case("Squeeze-attribute-opset11", node("Squeeze", ["x"], ["y"], axes=[1, -1]), {"x": floats(2, 1, 3, 1)}, 11),
    case("Squeeze-input", node("Squeeze", ["x", "axes"], ["y"]), {"x": floats(2, 1, 3, 1)}, 13, axes=ints([1])),
    case("Squeeze-all", node("Squeeze", ["x"], ["y"]), {"x": floats(2, 1, 3, 1)}),
    case("Unsqueeze-attribute-opset11", node("Unsqueeze", ["x"], ["y"], axes=[0, -1]), {"x": a34}, 11),
    case("Unsqueeze-input", node("Unsqueeze", ["x", "axes"], ["y"]), {"x": a34}, 13, axes=ints([-1, 1])),
    case("Unsqueeze-scalar", node("Unsqueeze", ["x", "axes"], ["y"]), {"x": np.array(2.0, np.float32)}, axes=ints([0])),
    case("Transpose", node("Transpose", ["x"], ["y"]), {"x": floats(2, 3, 4)}),
    case("Transpose-perm", node("Transpose", ["x"], ["y"], perm=[1, 2, 0]), {"x": floats(2, 3, 4)}),
    case("Expand", node("Expand", ["x", "s"], ["y"]), {"x": floats(3, 1)}, s=ints([2, 3, 4])),
    case("Expand-keeps-larger", node("Expand", ["x", "s"], ["y"]), {"x": floats(3, 4)}, s=ints([1, 1])),
    case("Tile", node("Tile", ["x", "r"], ["y"]), {"x": a34}, r=ints([2, 3])),
    case("Concat", node("Concat", ["a", "b", "c"], ["y"], axis=-1), {"a": a34, "b": floats(3, 2), "c": floats(3, 1)}),
    case("Concat-int-axis0", node("Concat", ["a", "b"], ["y"], axis=0), {"a": signed, "b": divisor}),
    case("Split-input", node("Split", ["x", "s"], ["y0", "y1"], axis=1), {"x": floats(2, 5)}, 13, s=ints([2, 3])),
    case("Split-equal", node("Split", ["x"], ["y0", "y1"], axis=-1), {"x": floats(2, 6)}, 13),
    case("Split-attribute-opset11", node("Split", ["x"], ["y0", "y1", "y2"], split=[1, 1, 2]), {"x": floats(4, 2)}, 11),
    case(
        "Split-num-outputs-uneven",
        node("Split", ["x"], ["y0", "y1", "y2"], axis=1, num_outputs=3),
        {"x": floats(2, 7)},
        18,
    ),
    case("Slice", node("Slice", ["x", "s", "e"], ["y"]), {"x": floats(5, 6)}, s=ints([1, 2]), e=ints([4, 5])),
    case(
        "Slice-axes-steps",
        node("Slice", ["x", "s", "e", "a", "t"], ["y"]),
        {"x": floats(5, 6, 7)},
        s=ints([1, 0]),
        e=ints([INT64_MAX, -1]),
        a=ints([-1, 0]),
        t=ints([2, 2]),
    ),
    case(
        "Slice-negative-step",
        node("Slice", ["x", "s", "e", "a", "t"], ["y"]),
        {"x": floats(5, 6)},
        s=ints([-1, 4]),
        e=ints([-INT64_MAX, 0]),
        a=ints([0, 1]),
        t=ints([-1, -2]),
    ),
    case(
        "Slice-clamped-opset11",
        node("Slice", ["x", "s", "e", "a"], ["y"]),
        {"x": floats(5, 6)},
        11,
        s=ints([-100]),
        e=ints([100]),
        a=ints([1]),
    ),
    case("Slice-empty", node("Slice", ["x", "s", "e"], ["y"]), {"x": floats(5, 6)}, s=ints([3]), e=ints([1])),
    case(
        "Pad-constant",
        node("Pad", ["x", "p", "v"], ["y"]),
        {"x": a34},
        13,
        p=ints([1, 0, 2, 3]),
        v=np.array(1.5, np.float32),
    ),
    case("Pad-default-value", node("Pad", ["x", "p"], ["y"]), {"x": a34}, p=ints([0, 2, 1, 0])),
    case("Pad-crop", node("Pad", ["x", "p"], ["y"]), {"x": a34}, p=ints([-1, 1, 0, -2])),
    case("Pad-int", node("Pad", ["x", "p", "v"], ["y"]), {"x": signed}, p=ints([2, 1]), v=ints(-9)),
    case("Pad-axes", node("Pad", ["x", "p", "", "a"], ["y"]), {"x": floats(2, 3, 4)}, 18, p=ints([1, 2]), a=ints([-1])),
    *(
        case(f"Pad-{mode}", node("Pad", ["x", "p"], ["y"], mode=mode), {"x": a34}, 19, p=ints([2, 1, 1, 3]))
        for mode in ("edge", "reflect", "wrap")
    ),
    case("ConstantOfShape", node("ConstantOfShape", ["s"], ["y"]), {"s": ints([2, 3])}),
    case(
        "ConstantOfShape-int",
        node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(ints([7]))),
        {"s": ints([4])},
    ),
    case(
        "ConstantOfShape-computed",
        [
            node("Shape", ["x"], ["s"]),
            node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([0.5], np.float32))),
        ],
        {"x": floats(2, 3)},
    ),
    case("Range-int", node("Range", ["a", "b", "c"], ["y"]), {"a": ints(10), "b": ints(-3), "c": ints(-3)}),
    case(
        "Range-float",
        node("Range", ["a", "b", "c"], ["y"]),
        {"a": np.array(0.0, np.float32), "b": np.array(1.0, np.float32), "c": np.array(0.1, np.float32)},
    ),
    case("Trilu", node("Trilu", ["x"], ["y"]), {"x": floats(2, 4, 4)}),
    case("Trilu-lower-k", node("Trilu", ["x", "k"], ["y"], upper=0), {"x": floats(4, 5)}, k=ints(-1)),
    case("Trilu-upper-k", node("Trilu", ["x", "k"], ["y"]), {"x": floats(4, 5)}, k=ints(2)),
    case(
        "Constant",
        [node("Constant", [], ["c"], value=numpy_helper.from_array(b4)), node("Add", ["x", "c"], ["y"])],
        {"x": a34},
    ),
    case(
        "Constant-value-float",
        [node("Constant", [], ["c"], value_float=2.5), node("Mul", ["x", "c"], ["y"])],
        {"x": a34},
    ),
    case(
        "Constant-value-ints",
        [node("Constant", [], ["s"], value_ints=[4, 3]), node("Reshape", ["x", "s"], ["y"])],
        {"x": a34},
    ),
    # indexing
    case("Gather", node("Gather", ["t", "i"], ["y"]), {"i": ints([0, -1, 2, 2])}, t=floats(5, 3)),
    case(
        "Gather-axis1-2d",
        node("Gather", ["x", "i"], ["y"], axis=1),
        {"x": floats(2, 5, 3), "i": ints([[0, 4], [-2, 1]])},
    ),
    case("Gather-scalar", node("Gather", ["x", "i"], ["y"], axis=-1), {"x": a34, "i": ints(-1)}),
    case("Gather-int32-indices", node("Gather", ["x", "i"], ["y"]), {"x": a34, "i": np.array([2, 0], np.int32)}),
    case(
        "GatherElements",
        node("GatherElements", ["x", "i"], ["y"], axis=1),
        {"x": a34, "i": ints([[0, -1], [3, 1], [2, 2]])},
    ),
    case("GatherND", node("GatherND", ["x", "i"], ["y"]), {"x": floats(3, 4, 2), "i": ints([[0, 1], [2, -1]])}),
    case("GatherND-full", node("GatherND", ["x", "i"], ["y"]), {"x": floats(3, 4), "i": ints([[[0, 1]], [[2, 3]]])}),
    case(
        "GatherND-batch",
        node("GatherND", ["x", "i"], ["y"], batch_dims=1),
        {"x": floats(2, 4, 3), "i": ints([[[1], [3]], [[0], [2]]])},
    ),
    *(
        case(
            f"ScatterND-{reduction}",
            node("ScatterND", ["x", "i", "u"], ["y"], **({} if reduction == "none" else {"reduction": reduction})),
            {"x": floats(4, 3), "u": floats(2, 3)},
            18,
            i=ints([[1], [-1]]),
        )
        for reduction in ("none", "add", "mul", "max", "min")
    ),
    case(
        "ScatterND-elements",
        node("ScatterND", ["x", "i", "u"], ["y"]),
        {"x": floats(3, 4), "u": floats(2)},
        i=ints([[0, 1], [2, 3]]),
    ),
    case(
        "OneHot",
        node("OneHot", ["i", "d", "v"], ["y"]),
        {"i": ints([0, 2, -1, 5])},
        d=ints(4),
        v=np.array([0.0, 1.0], np.float32),
    ),
    case(
        "OneHot-axis0",
        node("OneHot", ["i", "d", "v"], ["y"], axis=0),
        {"i": ints([[0, 2], [1, 3]])},
        d=ints([4]),
        v=ints([-1, 1]),
    ),
    case("NonZero", node("NonZero", ["x"], ["y"]), {"x": ints([[0, 1, 2], [3, 0, 0]])}),
]


@pytest.mark.parametrize(("nodes", "inputs", "opset", "initializers"), CASES)
def test_op_matches_onnxruntime(
    nodes: list[onnx.NodeProto], inputs: dict[str, np.ndarray], opset: int, initializers: dict[str, np.ndarray]
) -> None:
    model = make_model(nodes, inputs, opset, initializers)
    expected = run_ort(model, inputs)
    feeds = {name: torch.from_numpy(array.copy()) for name, array in inputs.items()}
    for tensor in feeds.values():
        if tensor.is_floating_point():
            tensor.requires_grad_(True)
    module = OnnxGraphModule(model)
    actual = module(feeds)
    for name, value in expected.items():
        assert_close(actual[name], value, name)
    differentiable = [value for value in actual.values() if value.requires_grad]
    if differentiable:  # the ops must stay differentiable: backward runs without error
        sum(value.sum() for value in differentiable).backward()


def test_supported_ops_cover_the_required_list() -> None:
    required = """
    Abs Add And ArgMax ArgMin BatchNormalization Cast CastLike Ceil Clip Concat Constant
    ConstantOfShape Cos CumSum Div Dropout Einsum Elu Equal Erf Exp Expand Flatten Floor Gather
    GatherElements GatherND Gelu Gemm Greater GreaterOrEqual HardSigmoid HardSwish Identity IsInf
    IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax MatMul Max Mean Min Mod Mul
    Neg Not Or Pad Pow PRelu Range Reciprocal ReduceL1 ReduceL2 ReduceLogSumExp ReduceMax ReduceMean
    ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape ScatterND Selu Shape Sigmoid Sign
    Sin Size Slice Softmax Softplus Softsign Split Sqrt Squeeze Sub Sum Tanh Tile TopK Transpose
    Trilu Unsqueeze Where Xor
    """.split()  # noqa: SIM905 - the ops fusion relies on
    assert set(required) <= SUPPORTED_OPS
    tested = {n.op_type for nodes, *_ in (param.values for param in CASES) for n in nodes}
    assert tested == SUPPORTED_OPS


def test_unsupported_op_is_refused_at_construction() -> None:
    nodes = [node("Relu", ["x"], ["r"]), node("Resize", ["r", "", "scales"], ["y"])]
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
            initializer=[numpy_helper.from_array(np.ones(4, np.float32), "scales")],
        ),
        opset_imports=[helper.make_opsetid("", 19)],
    )
    with pytest.raises(UnsupportedModelError, match="Resize"):
        OnnxGraphModule(model)
    model.graph.node[1].domain = "ai.onnx.ml"
    with pytest.raises(UnsupportedModelError, match=re.escape("ai.onnx.ml.Resize")):
        OnnxGraphModule(model)


def test_old_opset_is_refused() -> None:
    model = make_model([node("Relu", ["x"], ["y"])], {"x": b4}, 10)
    with pytest.raises(UnsupportedModelError, match="opset 10"):
        OnnxGraphModule(model)


def test_error_while_running_names_the_node() -> None:
    model = make_model(
        [node("Relu", ["x"], ["r"]), node("Reshape", ["r", "s"], ["y"])], {"x": b4, "s": ints([3, 2])}, 21
    )
    with pytest.raises(RuntimeError) as raised:
        OnnxGraphModule(model)({"x": torch.zeros(4), "s": torch.tensor([3, 2])})
    assert "node 1 (Reshape" in "".join(raised.value.__notes__)


# ---------------------------------------------------------------- whole models


class Tabular(nn.Module):
    """Two categorical features through embeddings and two dense ones, into an MLP: one score per row."""

    def __init__(self) -> None:
        super().__init__()
        self.city = nn.Embedding(10, 4)
        self.job = nn.Embedding(7, 3)
        self.mlp = nn.Sequential(nn.Linear(9, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, city: torch.Tensor, job: torch.Tensor, age: torch.Tensor, income: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.city(city), self.job(job), age[:, None], torch.log1p(income)[:, None]], dim=1)
        return self.mlp(features).squeeze(-1)


class Attention(nn.Module):
    """LayerNorm, self-attention and GELU over a short sequence, mean-pooled to one score per row."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(8)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.out = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        h, _ = self.attention(h, h, h)
        return self.out(nn.functional.gelu(h).mean(dim=1))


def tabular_feeds(batch: int) -> dict[str, np.ndarray]:
    return {
        "city": rng.integers(0, 10, batch),
        "job": rng.integers(0, 7, batch),
        "age": floats(batch),
        "income": floats(batch, low=0.0, scale=5.0),
    }


def attention_feeds(batch: int) -> dict[str, np.ndarray]:
    return {"x": floats(batch, 6, 8)}


def export_torch(module: nn.Module, feeds: dict[str, np.ndarray], path: str, dynamo: bool) -> onnx.ModelProto:
    module.eval()
    args = tuple(torch.from_numpy(array) for array in feeds.values())
    names = list(feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation, the dynamo one's axis naming
        if dynamo:
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                module, args, path, dynamo=True, input_names=names, output_names=["score"],
                dynamic_shapes=tuple({0: batch} for _ in args), verbose=False,
            )  # fmt: skip
        else:
            torch.onnx.export(
                module, args, path, dynamo=False, opset_version=17, input_names=names, output_names=["score"],
                dynamic_axes={name: {0: "batch"} for name in [*names, "score"]},
            )  # fmt: skip
    return onnx.load(path)


def sklearn_mlp() -> onnx.ModelProto:
    """A fitted MLPClassifier through skl2onnx, cut down to the float probabilities output."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    x = floats(200, 5)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence does not matter here
        classifier = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=300, random_state=0).fit(x, y)
        model = to_onnx(classifier, x[:1], options={"zipmap": False})
    return onnx.utils.Extractor(model).extract_model(["X"], ["probabilities"])


Feeds = Callable[[int], dict[str, np.ndarray]]
"""Random inputs for a model, given the batch size."""
Exported = tuple[onnx.ModelProto, Feeds]

MODELS: dict[str, tuple[Callable[[str], onnx.ModelProto], Feeds]] = {
    "tabular-dynamo": (lambda path: export_torch(Tabular(), tabular_feeds(5), path, True), tabular_feeds),
    "tabular-legacy": (lambda path: export_torch(Tabular(), tabular_feeds(5), path, False), tabular_feeds),
    "attention-dynamo": (lambda path: export_torch(Attention(), attention_feeds(5), path, True), attention_feeds),
    "attention-legacy": (lambda path: export_torch(Attention(), attention_feeds(5), path, False), attention_feeds),
    "sklearn-mlp": (lambda path: sklearn_mlp(), lambda batch: {"X": floats(batch, 5)}),
}


@pytest.fixture(scope="module", params=list(MODELS))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """Each model exported once per test module; the dynamo exporter takes seconds."""
    build, feeds = MODELS[request.param]
    return build(str(tmp_path_factory.mktemp("models") / "model.onnx")), feeds


def torch_feeds(feeds: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(array) for name, array in feeds.items()}


def test_model_matches_onnxruntime_at_any_batch_size(exported: Exported) -> None:
    model, make_feeds = exported
    module = OnnxGraphModule(model)
    for batch in (1, 50):
        feeds = make_feeds(batch)
        expected = run_ort(model, feeds)
        actual = module(torch_feeds(feeds))
        assert set(actual) == set(expected)
        for name, value in expected.items():
            assert_close(actual[name], value, f"{name} at batch {batch}")


def middle_range(model: onnx.ModelProto) -> tuple[range, list[str], list[str]]:
    """The middle third of the nodes, with the tensors it reads from earlier nodes or inputs and the ones
    it hands on to later nodes or the graph outputs."""
    nodes = model.graph.node
    span = range(len(nodes) // 3, max(2 * len(nodes) // 3, len(nodes) // 3 + 1))
    earlier = {i.name for i in model.graph.input} | {
        name for n in nodes[: span.start] if n.op_type != "Constant" for name in n.output
    }
    inputs = list(dict.fromkeys(name for i in span for name in nodes[i].input if name in earlier))
    later = {name for n in nodes[span.stop :] for name in n.input} | {o.name for o in model.graph.output}
    outputs = [name for i in span for name in nodes[i].output if name in later]
    return span, inputs, outputs


def test_run_nodes_matches_onnxruntime_on_the_extracted_subgraph(exported: Exported) -> None:
    model, make_feeds = exported
    module = OnnxGraphModule(model)
    span, inputs, outputs = middle_range(model)
    env = module.run_nodes(range(span.start), torch_feeds(make_feeds(7)))
    part = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model(inputs, outputs)
    expected = run_ort(part, {name: tensor_to_array(env[name]) for name in inputs})
    actual = module.run_nodes(span, {name: env[name] for name in inputs})
    assert set(actual) >= set(inputs) | set(outputs)
    for name in outputs:
        assert_close(actual[name], expected[name], name)
    component = module.component(span, inputs, outputs)
    for name, value in zip(outputs, component(*(env[name] for name in inputs)), strict=True):
        assert_close(value, expected[name], f"component {name}")


def test_component_refuses_an_open_range(exported: Exported) -> None:
    model, _ = exported
    module = OnnxGraphModule(model)
    span, inputs, outputs = middle_range(model)
    if not inputs:
        pytest.skip("the middle range reads nothing from earlier nodes")
    with pytest.raises(ValueError, match=re.escape(repr(inputs[-1]))):
        module.component(span, inputs[:-1], outputs)
    with pytest.raises(ValueError, match="not-a-tensor"):
        module.component(span, inputs, [*outputs, "not-a-tensor"])


def test_parameters_are_frozen_until_set_trainable(exported: Exported) -> None:
    model, make_feeds = exported
    module = OnnxGraphModule(model)
    parameters = dict(module.named_parameters())
    assert parameters and not any(p.requires_grad for p in parameters.values())
    assert all(name.isidentifier() for name in parameters)
    float_initializers = {i.name for i in model.graph.initializer if i.data_type == TensorProto.FLOAT}
    assert {name for name in module.initializer_names if module.initializer(name).is_floating_point()} == (
        float_initializers
    )
    assert not any(value.requires_grad for value in module(torch_feeds(make_feeds(3))).values())

    module.set_trainable(True)
    outputs = module(torch_feeds(make_feeds(20)))
    # squared: class probabilities sum to one, so their plain sum has no gradient
    sum(value.float().square().sum() for value in outputs.values() if value.requires_grad).backward()
    missing = [name for name, p in parameters.items() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reached {missing}"


def test_only_weights_train_and_scalar_constants_stay_fixed() -> None:
    """(x W + c)^p / q: W and the one-unit bias c are weights; the exponent p and divisor q are constants of
    the computation, and training p off 2 would turn negative bases into NaN."""
    inputs = {"x": floats(5, 2)}
    constants = {
        "W": floats(2, 1),
        "c": np.array([0.5], dtype=np.float32),
        "p": np.array(2.0, dtype=np.float32),
        "q": np.array([4.0], dtype=np.float32),
    }
    nodes = [
        node("Gemm", ["x", "W", "c"], ["linear"]),
        node("Pow", ["linear", "p"], ["squared"]),
        node("Div", ["squared", "q"], ["y"]),
    ]
    model = make_model(nodes, inputs, 17, constants)
    module = OnnxGraphModule(model)
    weights = {module.initializer_names[name] for name in ("W", "c")}
    assert {name for name, _ in module.named_parameters()} == weights
    assert {module.initializer_names[name] for name in ("p", "q")} <= {name for name, _ in module.named_buffers()}

    module.set_trainable(True)
    output = module(torch_feeds(inputs))["y"]
    assert_close(output.detach(), run_ort(model, inputs)["y"], "y")
    output.sum().backward()
    assert all(parameter.grad is not None for parameter in module.parameters())
    assert not module.initializer("p").requires_grad and not module.initializer("q").requires_grad


def test_gradient_reaches_the_embedding_rows_read(tmp_path: Path) -> None:
    module = OnnxGraphModule(export_torch(Tabular(), tabular_feeds(5), str(tmp_path / "m.onnx"), dynamo=False))
    module.set_trainable(True)
    feeds = tabular_feeds(4)
    feeds["city"] = ints([1, 1, -2, 3])  # ONNX Gather reads -2 as row 8
    module(torch_feeds(feeds))["score"].sum().backward()
    touched = module.initializer("city.weight").grad.abs().sum(dim=1) > 0
    assert touched.nonzero().flatten().tolist() == [1, 3, 8]


def test_initializer_arrays_write_back(exported: Exported) -> None:
    model, make_feeds = exported
    module = OnnxGraphModule(model)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1)
    arrays = module.initializer_arrays()
    assert set(arrays) == {i.name for i in model.graph.initializer}
    tuned = onnx.ModelProto()
    tuned.CopyFrom(model)
    for initializer in tuned.graph.initializer:
        initializer.CopyFrom(numpy_helper.from_array(arrays[initializer.name], initializer.name))
    feeds = make_feeds(6)
    expected = run_ort(tuned, feeds)
    actual = module(torch_feeds(feeds))
    for name, value in expected.items():
        assert_close(actual[name], value, name)
