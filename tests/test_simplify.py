"""The fused graph's shared-work pass: equal constants and equal computations merge, outputs stay."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fusion.akf.simplify import share_common_work
from fusion.onnx_runtime import create_session, run_session


def _two_copies_of_one_chain() -> onnx.ModelProto:
    """What two source graphs reading the same column look like side by side: each reshapes it with its
    own (equal) axes constant, then applies its own weights, and a random op that must stay twice."""
    nodes, initializers = [], []
    for prefix, scale in (("a/", 2.0), ("b/", 3.0)):
        initializers += [
            numpy_helper.from_array(np.array([1], dtype=np.int64), f"{prefix}axes"),
            numpy_helper.from_array(np.array([[scale]], dtype=np.float32), f"{prefix}weight"),
        ]
        nodes += [
            helper.make_node("Unsqueeze", ["x", f"{prefix}axes"], [f"{prefix}column"]),
            helper.make_node("Relu", [f"{prefix}column"], [f"{prefix}relu"]),
            helper.make_node("MatMul", [f"{prefix}relu", f"{prefix}weight"], [f"{prefix}out"]),
            helper.make_node("RandomUniformLike", [f"{prefix}relu"], [f"{prefix}noise"], seed=1.0),
        ]
    nodes += [
        helper.make_node("Add", ["a/out", "b/out"], ["sum"]),
        helper.make_node("Identity", ["sum"], ["first"]),
        helper.make_node("Identity", ["sum"], ["second"]),
        helper.make_node("Add", ["a/noise", "b/noise"], ["noise"]),
    ]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1]) for name in ("first", "second")]
    outputs.append(helper.make_tensor_value_info("noise", TensorProto.FLOAT, ["batch", 1]))
    graph = helper.make_graph(
        nodes, "pair", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"])], outputs, initializers
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_equal_constants_and_computations_merge_and_answers_stay() -> None:
    model = _two_copies_of_one_chain()
    simplified = share_common_work(model)
    onnx.checker.check_model(simplified, full_check=True)

    ops = [node.op_type for node in simplified.graph.node]
    assert ops.count("Unsqueeze") == 1 and ops.count("Relu") == 1, "the shared chain is computed once"
    assert ops.count("MatMul") == 2, "different weights stay separate"
    assert ops.count("RandomUniformLike") == 2, "random draws are never merged"
    assert ops.count("Identity") == 2, "every graph output keeps its own producer"
    assert sorted(t.name for t in simplified.graph.initializer) == ["a/axes", "a/weight", "b/weight"]

    x = np.array([-1.0, 0.5, 2.0], dtype=np.float32)
    before = run_session(create_session(model), {"x": x}, ["first", "second"])
    after = run_session(create_session(simplified), {"x": x}, ["first", "second"])
    for name in ("first", "second"):
        np.testing.assert_array_equal(after[name], before[name])
        np.testing.assert_array_equal(after[name][:, 0], np.maximum(x, 0) * 5)


def test_a_simplified_graph_has_nothing_left_to_merge() -> None:
    once = share_common_work(_two_copies_of_one_chain())
    assert share_common_work(once).SerializeToString() == once.SerializeToString()
