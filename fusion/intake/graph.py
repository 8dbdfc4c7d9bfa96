"""Graph walking, structure checks, pruning to the score, and the operator check.

Only the main graph is analysed here; subgraphs (If/Loop/Scan bodies) are walked for their tensors and
operators, and the names they read from the main graph count as inputs of the node that owns them, so
that pruning never drops a tensor a subgraph needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, MutableSequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from fusion.intake.records import ModelRejected
from fusion.supported_ops import ML_DOMAIN, SUPPORTED_ML_OPS

DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_CONSTANT_ELEMENTS = 4096
"""Constants read as values (offsets, the 1 in 1 - p) are small; larger ones are never materialised."""


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and every subgraph nested in it, without recursion (nesting depth is the uploader's)."""
    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        for node in current.node:
            stack.extend(subgraphs(node))


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for current in all_graphs(graph):
        yield from current.node


def _outer_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {s.values.name for s in graph.sparse_initializer}
    used = {v.name for v in graph.output}
    for node in graph.node:
        defined.update(node.output)
        used.update(name for name in node.input if name)
        for sub in subgraphs(node):
            used |= _outer_names(sub)
    return used - defined


def node_inputs(node: onnx.NodeProto) -> list[str]:
    """Every tensor a node reads: its inputs (empty = omitted optional) and its subgraphs' captures."""
    names = [name for name in node.input if name]
    for sub in subgraphs(node):
        names.extend(sorted(_outer_names(sub)))
    return names


def _graph_sources(graph: onnx.GraphProto) -> set[str]:
    names = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    return names | {s.values.name for s in graph.sparse_initializer}


@dataclass
class GraphIndex:
    """Who produces and who consumes each tensor of the main graph, and its constants."""

    graph: onnx.GraphProto
    producers: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = field(default_factory=dict)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.initializers = {t.name: t for t in self.graph.initializer}
        for node in self.graph.node:
            for name in node.output:
                if name:
                    self.producers[name] = node
            for position, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, position))

    def constant_tensor(self, name: str) -> onnx.TensorProto | None:
        """The tensor behind an initializer or a Constant node's `value`, else None."""
        if name in self.initializers:
            return self.initializers[name]
        node = self.producers.get(name)
        if node is None or node.op_type != "Constant" or node.domain not in DEFAULT_DOMAINS:
            return None
        return next((attr.t for attr in node.attribute if attr.name == "value" and attr.HasField("t")), None)

    def constant(self, name: str) -> np.ndarray | None:
        """A small constant's value (initializer, Constant `value` or `value_int(s)`), else None."""
        tensor = self.constant_tensor(name)
        if tensor is not None:
            return numpy_helper.to_array(tensor) if math.prod(tensor.dims) <= _MAX_CONSTANT_ELEMENTS else None
        node = self.producers.get(name)
        if node is None or node.op_type != "Constant" or node.domain not in DEFAULT_DOMAINS:
            return None
        for attr in node.attribute:
            if attr.name == "value_int":
                return np.array(attr.i, dtype=np.int64)
            if attr.name == "value_ints" and len(attr.ints) <= _MAX_CONSTANT_ELEMENTS:
                return np.array(attr.ints, dtype=np.int64)
        return None


def check_structure(graph: onnx.GraphProto) -> None:
    """Each tensor defined once, every read defined, no cycle: what pruning and analysis rely on.

    The ONNX checker runs later, on the pruned graph; this pass stands on its own so that nothing below
    depends on the checker having caught a malformed graph.
    """
    defined = _graph_sources(graph)
    produced: set[str] = set()
    for node in graph.node:
        for name in filter(None, node.output):
            if name in defined or name in produced:
                raise ModelRejected(
                    f"Tensor '{name}' is defined more than once (node '{node.name or node.op_type}'); "
                    "an ONNX graph defines each tensor once. Re-export the model."
                )
            produced.add(name)
    known = defined | produced
    reads = [(node.name or node.op_type, name) for node in graph.node for name in node_inputs(node)]
    reads += [("graph output", v.name) for v in graph.output]
    for reader, name in reads:
        if name not in known:
            raise ModelRejected(
                f"'{reader}' reads tensor '{name}', which no node, input or initializer defines. "
                "The graph is incomplete; re-export the model."
            )
    _check_acyclic(graph)


def _check_acyclic(graph: onnx.GraphProto) -> None:
    producer_of = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    waiting = [0] * len(graph.node)
    dependants: list[list[int]] = [[] for _ in graph.node]
    for i, node in enumerate(graph.node):
        for name in node_inputs(node):
            if name in producer_of:
                waiting[i] += 1
                dependants[producer_of[name]].append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for j in dependants[i]:
            waiting[j] -= 1
            if waiting[j] == 0:
                ready.append(j)
    if done < len(graph.node):
        stuck = [graph.node[i].name or graph.node[i].op_type for i, count in enumerate(waiting) if count]
        raise ModelRejected(
            f"The graph has a cycle through node(s) {', '.join(stuck[:5])}; ONNX graphs must be acyclic. "
            "Re-export the model."
        )


def _keep_only(repeated: MutableSequence[Any], keep: Callable[[int, Any], bool]) -> None:
    """Delete in place (no copies of large initializers) the items that `keep(position, item)` rejects."""
    for i in reversed(range(len(repeated))):
        if not keep(i, repeated[i]):
            del repeated[i]


def prune_to(model: onnx.ModelProto, score: str) -> None:
    """Keep only what computes `score`: its ancestor nodes, their initializers and inputs, one output.

    This drops side outputs such as skl2onnx's label branch (and its ai.onnx.ml operators), so a model is
    judged only by what fusebox will run.
    """
    graph = model.graph
    producer_of = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    if score not in producer_of:
        raise ModelRejected(
            f"The output '{score}' is not computed by any node (it is an input or a constant). "
            "Export the trained model's prediction."
        )
    needed = {score}
    kept: set[int] = set()
    stack = [score]
    while stack:
        position = producer_of.get(stack.pop())
        if position is None or position in kept:
            continue
        kept.add(position)
        for name in node_inputs(graph.node[position]):
            if name not in needed:
                needed.add(name)
                stack.append(name)
    initializers = {t.name for t in graph.initializer}
    _keep_only(graph.node, lambda i, _: i in kept)
    produced = {name for node in graph.node for name in node.output}
    _keep_only(graph.initializer, lambda _, t: t.name in needed)
    _keep_only(graph.sparse_initializer, lambda _, s: s.values.name in needed)
    _keep_only(graph.input, lambda _, v: v.name in needed and v.name not in initializers)
    _keep_only(graph.output, lambda _, v: v.name == score)
    _keep_only(graph.value_info, lambda _, v: v.name in needed or v.name in produced)
    used_domains = {node.domain for node in all_nodes(graph)}
    _keep_only(model.opset_import, lambda _, o: o.domain in DEFAULT_DOMAINS or o.domain in used_domains)


def check_ops(graph: onnx.GraphProto, supported_ops: frozenset[str], ml_ops: frozenset[str] = SUPPORTED_ML_OPS) -> None:
    """Every node must be a standard ONNX operator that the engine can turn into PyTorch, or one of the
    classic-model (ai.onnx.ml) operators that ONNX Runtime computes for it."""
    unsupported = sorted(
        {
            (node.op_type, node.domain)
            for node in all_nodes(graph)
            if not (node.domain in DEFAULT_DOMAINS and node.op_type in supported_ops)
            and not (node.domain == ML_DOMAIN and node.op_type in ml_ops)
        }
    )
    if not unsupported:
        return
    named = ", ".join(f"{op} (domain {domain or 'ai.onnx'})" for op, domain in unsupported)
    listed = sorted(supported_ops)
    shown = ", ".join(listed[:40]) + (f", ... ({len(listed)} in all)" if len(listed) > 40 else "")
    raise ModelRejected(
        f"The model uses operators fusebox cannot run: {named}. Supported are standard ONNX (ai.onnx) "
        f"operators: {shown}; and the classic-model (ai.onnx.ml) operators {', '.join(sorted(ml_ops))}. "
        "Re-export the model so it uses only these (e.g. another opset, or replace the layer that produces them)."
    )
