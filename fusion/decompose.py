"""Automatic decomposition of a model graph into a hierarchy of components.

The rule works on any ONNX graph, not on layer names:

1. Cuts. A tensor is a cut when every feature path from the model's inputs to its output passes
   through it: the tensors among the output's dominators (a virtual source feeds every input).
2. Pieces. Consecutive cuts bound pieces. A piece of one node is simple; a larger piece has parallel
   branches that meet at the node producing its closing cut (a cross network beside a deep network,
   a wide part beside a deep part, a residual connection).
3. Layers. Pieces are grouped into components so that each component starts at a learned dense layer
   (MatMul/Gemm with a weight operand) and keeps the activations, normalisations and reshapes that
   follow it. What precedes the first dense layer is the stem (embedding lookups, feature processing);
   the last component is the head; the rest are the body.
4. Hierarchy. A parallel piece holding two or more dense layers is decomposed again, branch by branch,
   with the same rule, so components nest.

Nodes that only compute shapes or constants are attached to the component of their first consumer.

Classic models (a tree ensemble or linear model of the ai.onnx.ml domain) have no dense layers; their
rule is fusion/classic.py's: the preprocessing before the estimator is the stem, the estimator's stage
groups (partial sums over tree index ranges; one linear score for a linear model) are the body, and the
estimator with what follows it is the head.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import onnx

from fusion.classic import STAGE_PREFIX, Estimator, existing_stage_groups, find_estimator, stage_groups
from fusion.classic import parameter_count as classic_parameter_count
from fusion.graph import GraphView

_SOURCE = "\x00source"
DEFAULT_STAGE_GROUPS = 3
"""Stage groups a tree ensemble is shown with before a fusion picks its number of levels."""


class Role(StrEnum):
    STEM = "stem"
    BODY = "body"
    HEAD = "head"
    BRANCH = "branch"
    SHARED = "shared"
    BLOCK = "block"


@dataclass
class Component:
    name: str
    role: Role
    node_indices: list[int]
    inputs: list[str]
    outputs: list[str]
    children: list[Component] = field(default_factory=list)
    parallel: bool = False
    parameter_count: int = 0
    op_types: dict[str, int] = field(default_factory=dict)
    output_shapes: list[list[int | str] | None] = field(default_factory=list)
    trees: int | None = None
    """Trees in a classic model's stage group; None elsewhere."""

    def walk(self) -> Iterable[Component]:
        yield self
        for child in self.children:
            yield from child.walk()

    def leaves(self) -> Iterable[Component]:
        if not self.children:
            yield self
        for child in self.children:
            yield from child.leaves()


@dataclass
class Decomposition:
    components: list[Component]
    output: str
    spine: list[str]
    """Representation tensors from shallow to deep (stem output first; the model output excluded):
    the cuts of the top-level chain, and inside a parallel component its deepest branch's cuts."""
    parameter_count: int

    @property
    def stem(self) -> Component | None:
        return next((c for c in self.components if c.role == Role.STEM), None)

    @property
    def head(self) -> Component:
        return self.components[-1]

    @property
    def body(self) -> list[Component]:
        return [c for c in self.components if c.role == Role.BODY]

    def body_leaf_count(self) -> int:
        """Innermost body components, counting those nested inside parallel components."""
        counted = {Role.BODY, Role.BRANCH, Role.BLOCK}
        return sum(1 for component in self.body for leaf in component.leaves() if leaf.role in counted)

    def all_components(self) -> list[Component]:
        return [c for top in self.components for c in top.walk()]


def decompose(
    model: onnx.ModelProto, output: str | None = None, stage_count: int = DEFAULT_STAGE_GROUPS
) -> Decomposition:
    """`stage_count`: the stage groups of a tree ensemble, unless its graph already computes them."""
    view = GraphView.of(model, output)
    estimator = find_estimator(model, view.output)
    if estimator is not None:
        return _decompose_classic(view, estimator, stage_count)
    feature_nodes = {i for i in view.relevant_nodes if view.is_feature_node(i)}
    entry = {name for name in view.inputs if any(c in feature_nodes for c in view.consumers.get(name, []))}
    if not feature_nodes:
        raise ValueError("the model output does not depend on any model input")
    groups = _chain(view, feature_nodes, entry, view.output)
    components = _top_level(view, groups)
    _attach_non_feature_nodes(view, components)
    for component in components:
        _finish(view, component)
    return Decomposition(
        components=components,
        output=view.output,
        spine=_spine(components),
        parameter_count=view.parameter_count(view.relevant_nodes),
    )


def _decompose_classic(view: GraphView, estimator: Estimator, stage_count: int) -> Decomposition:
    planned = existing_stage_groups(view.model, estimator) or stage_groups(estimator, stage_count)
    stage_nodes = {node.name: i for i, node in enumerate(view.nodes) if node.name.startswith(STAGE_PREFIX)}
    stem = view.all_ancestors(name for name in estimator.node.input if name)
    learned = classic_parameter_count(estimator.node)
    components = []
    if stem:
        components.append(Component("stem", Role.STEM, sorted(stem), [], [estimator.node.input[0]]))
    kind = "TreeEnsembleRegressor" if estimator.is_trees else estimator.node.op_type
    for number, group in enumerate(planned, start=1):
        nodes = [stage_nodes[group.tensor]] if group.tensor in stage_nodes else []
        share = group.trees / estimator.tree_count if estimator.tree_count else 1.0
        components.append(
            Component(
                f"stage{number}" if estimator.is_trees else "linear_score",
                Role.BODY,
                nodes,
                inputs=[estimator.node.input[0]],
                outputs=[group.tensor],
                parameter_count=round(learned * share),
                op_types={kind: 1},
                output_shapes=[view.shape(group.tensor) or ["N", estimator.score_width]],
                trees=group.trees if estimator.is_trees else None,
            )
        )
    head = Component("head", Role.HEAD, sorted(view.relevant_nodes - stem), [], [view.output])
    for component in (components[0], head) if stem else (head,):
        _finish(view, component)
        component.parameter_count += sum(classic_parameter_count(view.nodes[i]) for i in component.node_indices)
    return Decomposition(
        components=[*components, head],
        output=view.output,
        spine=[group.tensor for group in planned],
        parameter_count=view.parameter_count(view.relevant_nodes)
        + sum(classic_parameter_count(view.nodes[i]) for i in view.relevant_nodes),
    )


@dataclass
class _Group:
    """Consecutive pieces forming one component; `branches` is set for a decomposed parallel piece."""

    nodes: set[int]
    output: str
    branches: list[tuple[str, list[_Group] | set[int]]] = field(default_factory=list)
    shared: set[int] = field(default_factory=set)
    weighted: bool = False
    tail: set[int] = field(default_factory=set)
    """Nodes after a parallel piece's join (activations, reshapes) merged into this group."""
    join_output: str = ""


def _cuts(view: GraphView, nodes: set[int], entry: set[str], sink: str) -> list[str]:
    """Tensors in the region that every path from `entry` to `sink` passes through, in flow order."""
    order: list[str | int] = [_SOURCE, *sorted(entry)]
    predecessors: dict[str | int, list[str | int]] = {name: [_SOURCE] for name in entry}
    for index in sorted(nodes):
        order.append(index)
        predecessors[index] = [name for name in view.feature_inputs(index) if name in predecessors]
        for name in view.nodes[index].output:
            if name in view.feature_tensors:
                order.append(name)
                predecessors[name] = [index]
    position = {vertex: i for i, vertex in enumerate(order)}
    idom: dict[str | int, str | int] = {_SOURCE: _SOURCE}
    for vertex in order[1:]:
        preds = [p for p in predecessors.get(vertex, []) if p in idom]
        if not preds:
            continue
        dominator = preds[0]
        for other in preds[1:]:
            dominator = _intersect(dominator, other, idom, position)
        idom[vertex] = dominator
    if sink not in idom:
        raise ValueError(f"tensor '{sink}' is not reachable from the region's inputs")
    chain = []
    vertex = sink
    while vertex != _SOURCE:
        if isinstance(vertex, str) and vertex not in entry:
            chain.append(vertex)
        vertex = idom[vertex]
    return chain[::-1]


def _intersect(
    a: str | int, b: str | int, idom: dict[str | int, str | int], position: dict[str | int, int]
) -> str | int:
    while a != b:
        while position[a] > position[b]:
            a = idom[a]
        while position[b] > position[a]:
            b = idom[b]
    return a


def _chain(view: GraphView, nodes: set[int], entry: set[str], sink: str) -> list[_Group]:
    """Split a region into pieces at its cuts and group the pieces into layer components."""
    groups: list[_Group] = []
    assigned: set[int] = set()
    for cut in _cuts(view, nodes, entry, sink):
        piece = view.node_ancestors([cut], within=nodes) - assigned
        assigned |= piece
        group = _piece_group(view, piece, cut)
        if groups and not group.weighted:
            previous = groups[-1]
            if previous.branches:
                previous.tail |= group.nodes
            previous.nodes |= group.nodes
            previous.output = cut
        else:
            group.join_output = cut
            groups.append(group)
    return groups


def _produced(view: GraphView, nodes: Iterable[int]) -> set[str]:
    return {name for index in nodes for name in view.nodes[index].output}


def _piece_group(view: GraphView, piece: set[int], cut: str) -> _Group:
    """One piece; a parallel piece with two or more dense layers gets its branches decomposed."""
    group = _Group(nodes=set(piece), output=cut, weighted=any(view.is_weighted(i) for i in piece))
    if sum(view.is_weighted(i) for i in piece) < 2:
        return group
    join = view.producer[cut]
    members = {
        name: view.node_ancestors([name], within=piece - {join}) for name in dict.fromkeys(view.feature_inputs(join))
    }
    seen: set[int] = set()
    shared: set[int] = set()
    for found in members.values():
        shared |= seen & found
        seen |= found
    exclusive = {name: found - shared for name, found in members.items() if found - shared}
    has_skip = any(not found for found in members.values())
    if (len(exclusive) < 2 and not has_skip) or any(view.is_weighted(i) for i in shared):
        return group
    group.shared = shared
    for name, found in exclusive.items():
        branch_entry = {t for i in found for t in view.feature_inputs(i)} - _produced(view, found)
        if sum(view.is_weighted(i) for i in found) >= 2:
            group.branches.append((name, _chain(view, found, branch_entry, name)))
        else:
            group.branches.append((name, found))
    return group


def _top_level(view: GraphView, groups: list[_Group]) -> list[Component]:
    last = groups[-1]
    if last.branches and last.tail:
        # The model ends where parallel branches meet (DeepFM sums its parts): the parallel part is body,
        # and what follows the join is the head.
        head = _Group(nodes=set(last.tail), output=last.output)
        last.nodes -= last.tail
        last.output, last.tail = last.join_output, set()
        groups = [*groups, head]
    components: list[Component] = []
    body_number = 0
    for position, group in enumerate(groups):
        if position == len(groups) - 1:
            role, name = Role.HEAD, "head"
        elif position == 0 and not group.weighted:
            role, name = Role.STEM, "stem"
        else:
            body_number += 1
            role, name = Role.BODY, f"body{body_number}"
        components.append(_component(view, group, name, role))
    return components


def _component(view: GraphView, group: _Group, name: str, role: Role) -> Component:
    component = Component(name, role, sorted(group.nodes), inputs=[], outputs=[group.output])
    if not group.branches:
        return component
    component.parallel = True
    if group.shared:
        read_by_rest = {t for i in group.nodes - group.shared for t in view.nodes[i].input}
        shared_outputs = sorted(_produced(view, group.shared) & read_by_rest)
        component.children.append(Component(f"{name}.shared", Role.SHARED, sorted(group.shared), [], shared_outputs))
    for number, (sink, content) in enumerate(group.branches, start=1):
        branch_name = f"{name}.branch{number}"
        if isinstance(content, set):
            component.children.append(Component(branch_name, Role.BRANCH, sorted(content), [], [sink]))
            continue
        branch_nodes = sorted(set().union(*(block.nodes for block in content)))
        branch = Component(branch_name, Role.BRANCH, branch_nodes, [], [sink])
        if len(content) > 1:
            has_stem = not content[0].weighted
            for position, block in enumerate(content):
                if has_stem and position == 0:
                    block_role, block_name = Role.STEM, f"{branch_name}.stem"
                else:
                    block_role, block_name = Role.BLOCK, f"{branch_name}.block{position + (not has_stem)}"
                branch.children.append(_component(view, block, block_name, block_role))
        component.children.append(branch)
    return component


def _attach_non_feature_nodes(view: GraphView, components: list[Component]) -> None:
    """Give each shape/constant node to the innermost component of its first feature consumer."""
    owner: dict[int, Component] = {}
    for top in components:
        for component in top.walk():
            for index in component.node_indices:
                if not component.children or index not in owner:
                    owner[index] = component
    pending = sorted((i for i in view.relevant_nodes if i not in owner), reverse=True)
    for index in pending:
        consumers = [c for name in view.nodes[index].output for c in view.consumers.get(name, [])]
        first = min((c for c in consumers if c in owner), default=None)
        if first is None:
            continue
        target = owner[first]
        owner[index] = target
        for top in components:
            for component in top.walk():
                if target is component or _contains(component, target):
                    component.node_indices = sorted({*component.node_indices, index})


def _contains(parent: Component, child: Component) -> bool:
    return any(candidate is child for candidate in parent.walk())


def _finish(view: GraphView, component: Component) -> None:
    """Fill in inputs, parameter count, op types and shapes, children first."""
    for child in component.children:
        _finish(view, child)
    produced = _produced(view, component.node_indices)
    reads = [name for i in component.node_indices for name in view.nodes[i].input]
    component.inputs = list(
        dict.fromkeys(name for name in reads if name and name not in produced and name not in view.initializers)
    )
    component.parameter_count = view.parameter_count(component.node_indices)
    op_types: dict[str, int] = {}
    for index in component.node_indices:
        op_type = view.nodes[index].op_type
        op_types[op_type] = op_types.get(op_type, 0) + 1
    component.op_types = op_types
    component.output_shapes = [view.shape(name) for name in component.outputs]


def _spine(components: list[Component]) -> list[str]:
    spine: list[str] = []
    for component in components[:-1]:
        spine.extend(_inner_spine(component))
        spine.extend(component.outputs)
    return spine


def _inner_spine(component: Component) -> list[str]:
    """Inside a parallel component, the cuts of its deepest branch (the one with most blocks)."""
    branches = [c for c in component.children if c.role == Role.BRANCH and c.children]
    if not branches:
        return []
    deepest = max(branches, key=lambda branch: len(branch.children))
    return [tensor for block in deepest.children for tensor in (*_inner_spine(block), *block.outputs)]


def format_tree(decomposition: Decomposition, title: str = "model") -> str:
    """The component hierarchy as an indented tree, one component a line."""
    lines = [f"{title}: {decomposition.parameter_count:,} parameters, output '{decomposition.output}'"]

    def add(components: list[Component], prefix: str) -> None:
        for position, component in enumerate(components):
            last = position == len(components) - 1
            lines.append(prefix + ("└─ " if last else "├─ ") + _describe(component))
            add(component.children, prefix + ("   " if last else "│  "))

    add(decomposition.components, "")
    return "\n".join(lines)


def _describe(component: Component) -> str:
    inputs = ", ".join(component.inputs) if len(component.inputs) <= 3 else f"{len(component.inputs)} inputs"
    outputs = ", ".join(
        f"{name} {_shape_text(shape)}" for name, shape in zip(component.outputs, component.output_shapes, strict=True)
    )
    ops = " ".join(f"{op}×{count}" if count > 1 else op for op, count in sorted(component.op_types.items()))
    kind = " parallel" if component.parallel else ""
    trees = "" if component.trees is None else f" {component.trees} tree{'s' if component.trees != 1 else ''},"
    return f"{component.name}{kind} [{inputs} -> {outputs}]{trees} {component.parameter_count:,} params: {ops}"


def _shape_text(shape: list[int | str] | None) -> str:
    return "[" + ",".join(str(dim) for dim in shape) + "]" if shape is not None else "[?]"
