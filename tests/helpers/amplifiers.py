"""Small ONNX models that ask for far more than they carry (the intake budget's cases), and a model whose
weights lie in a companion file as PyTorch's exporter writes them. Shared by the intake tests, the service
tests and bench/intake_budget.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def model_of(
    nodes: list[onnx.NodeProto], width: int = 1, initializers: list[onnx.TensorProto] | None = None
) -> onnx.ModelProto:
    """x [N, width] -> ... -> y [N, 1]; `nodes` compute "y"."""
    graph = helper.make_graph(
        nodes,
        "budget",
        [helper.make_tensor_value_info("x", FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 1])],
        initializers or [],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ints(name: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(values, np.int64)))


def filled(shape_name: str, out: str, fill: float = 1.0, name: str = "") -> onnx.NodeProto:
    value = numpy_helper.from_array(np.array([fill], np.float32))
    return helper.make_node("ConstantOfShape", [shape_name], [out], value=value, name=name)


def plus_total(tensor: str) -> list[onnx.NodeProto]:
    """y = x + sum(tensor): the tensor feeds the score, so pruning keeps it."""
    return [
        helper.make_node("ReduceSum", [tensor], ["total"], keepdims=0),
        helper.make_node("Add", ["x", "total"], ["y"]),
    ]


def constant_of_shape_bomb(side: int = 20_000) -> onnx.ModelProto:
    """A few hundred bytes that ask for a side x side float tensor."""
    return model_of([ints("shape", [side, side]), filled("shape", "big", name="bomb"), *plus_total("big")])


def chained_matmuls(side: int = 3000, links: int = 40) -> onnx.ModelProto:
    """A kilobyte that asks for `links` side x side x side matrix products."""
    nodes = [ints("shape", [side, side]), filled("shape", "m0", 1e-3)]
    nodes += [helper.make_node("MatMul", [f"m{i}", "m0"], [f"m{i + 1}"], name=f"link{i}") for i in range(links)]
    return model_of([*nodes, *plus_total(f"m{links}")])


def external_mlp(folder: Path, width: int, name: str = "model.onnx.data") -> tuple[bytes, Path, np.ndarray]:
    """x [N, width] @ W [width, width], summed to [N, 1]; W kept in `folder/name` as the exporter does."""
    matrix = np.random.default_rng(0).standard_normal((width, width)).astype(np.float32) / width
    path = folder / name
    path.write_bytes(matrix.tobytes())
    tensor = TensorProto(name="w", data_type=FLOAT, dims=[width, width], data_location=TensorProto.EXTERNAL)
    for key, text in (("location", name), ("offset", "0"), ("length", str(matrix.nbytes))):
        tensor.external_data.add(key=key, value=text)
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("ReduceSum", ["h", "axes"], ["y"])]
    return model_of(nodes, width=width, initializers=[tensor, axes]).SerializeToString(), path, matrix
