"""Shared work in the fused graph computed once.

Source models exported on their own repeat work the fused graph needs only once: every one of them
reshapes the same input columns, and exporters write the same small constants (axes, shapes) under
their own names. Two passes find it, whatever produced the graphs:
  1. initializers, and Constant nodes, holding the same value become one tensor;
  2. nodes applying the same operator, with the same attributes, to the same inputs become one node
     (common subexpressions), repeated down the graph, so that whole shared chains fold.
The result computes exactly what the graph computed before (no arithmetic changes), with fewer nodes and
weights for any runtime that loads it.
"""

from __future__ import annotations

import onnx

_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial"}


def share_common_work(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` (nodes in topological order) with repeated tensors and computations merged."""
    simplified = onnx.ModelProto()
    simplified.CopyFrom(model)
    graph = simplified.graph
    alias = _merge_initializers(graph)
    kept: list[onnx.NodeProto] = []
    seen: dict[tuple, onnx.NodeProto] = {}
    protected = {value.name for value in graph.output}
    for node in graph.node:
        node.input[:] = [alias.get(name, name) for name in node.input]
        key = _node_key(node)
        if key is not None and not protected.intersection(node.output):
            earlier = seen.get(key)
            if earlier is not None and len(earlier.output) == len(node.output):
                alias.update(zip(node.output, earlier.output, strict=True))
                continue
            seen[key] = node
        kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)
    read = {name for node in kept for name in node.input} | protected
    live = [tensor for tensor in graph.initializer if tensor.name in read]
    del graph.initializer[:]
    graph.initializer.extend(live)
    return simplified


def _merge_initializers(graph: onnx.GraphProto) -> dict[str, str]:
    """Initializer name -> the name of the first initializer holding the same value."""
    first: dict[bytes, str] = {}
    alias = {}
    inputs = {value.name for value in graph.input}
    for tensor in graph.initializer:
        if tensor.name in inputs:  # an initializer that is also an input can be overridden at run time
            continue
        key = _tensor_key(tensor)
        if key in first:
            alias[tensor.name] = first[key]
        else:
            first[key] = tensor.name
    return alias


def _tensor_key(tensor: onnx.TensorProto) -> bytes:
    anonymous = onnx.TensorProto()
    anonymous.CopyFrom(tensor)
    anonymous.name = ""
    anonymous.doc_string = ""
    return anonymous.SerializeToString(deterministic=True)


def _node_key(node: onnx.NodeProto) -> tuple | None:
    """What makes two nodes compute the same outputs; None for nodes never merged."""
    if node.op_type in _NONDETERMINISTIC or any(attribute.g.node or attribute.graphs for attribute in node.attribute):
        return None
    attributes = tuple(
        sorted((attribute.name, attribute.SerializeToString(deterministic=True)) for attribute in node.attribute)
    )
    return node.domain, node.op_type, tuple(node.input), attributes
