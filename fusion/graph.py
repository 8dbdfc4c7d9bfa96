"""A read-only view of an ONNX graph for analysis: who produces and consumes each tensor, and
which tensors carry features (values derived from the model's inputs) rather than shapes or constants.

Dynamic export adds side paths (Shape -> Gather -> Concat -> Reshape) that connect the inputs to later
nodes without carrying any feature values; treating them as data flow would hide every cut, so they
are classified apart here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import onnx

SHAPE_OPS = frozenset({"Shape", "Size"})
WEIGHTED_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"})
"""Ops that apply a learned dense transformation when one operand is a weight."""


@dataclass
class GraphView:
    model: onnx.ModelProto
    output: str
    nodes: list[onnx.NodeProto] = field(init=False)
    producer: dict[str, int] = field(init=False)
    consumers: dict[str, list[int]] = field(init=False)
    initializers: dict[str, onnx.TensorProto] = field(init=False)
    inputs: list[str] = field(init=False)

    def __post_init__(self) -> None:
        graph = self.model.graph
        self.nodes = list(graph.node)
        self.initializers = {tensor.name: tensor for tensor in graph.initializer}
        self.inputs = [value.name for value in graph.input if value.name not in self.initializers]
        self.producer = {}
        self.consumers = {}
        for index, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(index)

    @classmethod
    def of(cls, model: onnx.ModelProto, output: str | None = None) -> GraphView:
        return cls(model, output or model.graph.output[0].name)

    @cached_property
    def topological_order(self) -> list[int]:
        """Node indices, producers before consumers (ONNX requires this order; it is checked here)."""
        seen = set(self.inputs) | set(self.initializers) | {""}
        for index, node in enumerate(self.nodes):
            missing = [name for name in node.input if name not in seen]
            if missing:
                raise ValueError(f"node {index} ({node.op_type}) reads {missing} before they are produced")
            seen.update(node.output)
        return list(range(len(self.nodes)))

    @cached_property
    def feature_tensors(self) -> frozenset[str]:
        """Tensors whose values derive from the model's inputs through non-shape ops."""
        carrying = set(self.inputs)
        for index in self.topological_order:
            node = self.nodes[index]
            if node.op_type not in SHAPE_OPS and any(name in carrying for name in node.input):
                carrying.update(name for name in node.output if name)
        return frozenset(carrying)

    def is_feature_node(self, index: int) -> bool:
        return any(name in self.feature_tensors for name in self.nodes[index].output)

    def feature_inputs(self, index: int) -> list[str]:
        node = self.nodes[index]
        return [name for name in node.input if name in self.feature_tensors and self.is_feature_node(index)]

    @cached_property
    def relevant_nodes(self) -> frozenset[int]:
        """Nodes the output depends on, through any kind of edge."""
        return frozenset(self.all_ancestors([self.output]))

    def all_ancestors(self, tensors: Iterable[str]) -> set[int]:
        """Nodes the given tensors depend on, through any kind of edge, their producers included."""
        needed: set[int] = set()
        stack = [self.producer[name] for name in tensors if name in self.producer]
        while stack:
            index = stack.pop()
            if index in needed:
                continue
            needed.add(index)
            stack.extend(self.producer[name] for name in self.nodes[index].input if name in self.producer)
        return needed

    def node_ancestors(self, tensors: Iterable[str], within: set[int]) -> set[int]:
        """Nodes in `within` that the given tensors depend on, through feature edges only."""
        found: set[int] = set()
        stack = [self.producer[name] for name in tensors if name in self.producer]
        while stack:
            index = stack.pop()
            if index in found or index not in within:
                continue
            found.add(index)
            stack.extend(self.producer[name] for name in self.feature_inputs(index) if name in self.producer)
        return found

    def is_weighted(self, index: int) -> bool:
        """A dense learned layer: a weighted op with a non-feature (weight) operand."""
        node = self.nodes[index]
        return node.op_type in WEIGHTED_OPS and any(name and name not in self.feature_tensors for name in node.input)

    def is_embedding_lookup(self, index: int) -> bool:
        node = self.nodes[index]
        return node.op_type == "Gather" and node.input[0] in self.initializers

    def parameter_count(self, node_indices: Iterable[int]) -> int:
        """Elements of the floating-point initializers the nodes read (each counted once)."""
        names = {name for index in node_indices for name in self.nodes[index].input if name in self.initializers}
        return sum(
            int(np.prod(self.initializers[name].dims, dtype=np.int64))
            for name in names
            if onnx.helper.tensor_dtype_to_np_dtype(self.initializers[name].data_type).kind == "f"
        )

    @cached_property
    def _inferred_types(self) -> dict[str, onnx.TypeProto]:
        graph = onnx.shape_inference.infer_shapes(self.model, strict_mode=False).graph
        return {value.name: value.type for value in [*graph.input, *graph.value_info, *graph.output]}

    def shape(self, tensor: str) -> list[int | str] | None:
        """The static shape ONNX shape inference finds (dynamic dims by name or '?'), None if unknown."""
        tensor_type = self._inferred_types.get(tensor, onnx.TypeProto()).tensor_type
        if not tensor_type.HasField("shape"):
            return None
        return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or "?") for dim in tensor_type.shape.dim]

    def dtype(self, tensor: str) -> str | None:
        """Numpy dtype name of a tensor, None if shape inference does not know it."""
        elem_type = self._inferred_types.get(tensor, onnx.TypeProto()).tensor_type.elem_type
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name if elem_type else None
