"""Classic models (tree ensembles, linear models and their preprocessing, in the ai.onnx.ml domain) as
fusion sources: their stage groups.

A boosted ensemble is a sum of trees in which later trees correct earlier ones: the boosting analogue of
depth. Its trees, by index, are split into stage groups; a group's partial raw score is the same kind of
operator over that group's trees only (a TreeEnsembleRegressor without post-transform), and it is one
component output, so one fusion level. The first group carries the base values, so the groups' partial
scores add up to the whole model's raw score. A forest averages its trees: each group sums its own trees
divided by the whole forest's tree count, i.e. its averaged sub-forest weighted by its share of the trees,
so the groups add up to the forest's score too. A linear model (after its preprocessing stem) is one
component: its linear score.

The stage nodes are added beside the untouched model graph (`with_stages`), which keeps computing the
model's own output. ONNX Runtime computes all of it; nothing here is ever differentiated.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fusion.supported_ops import ML_DOMAIN

TREE_ESTIMATORS = frozenset({"TreeEnsembleClassifier", "TreeEnsembleRegressor", "TreeEnsemble"})
LINEAR_ESTIMATORS = frozenset({"LinearClassifier", "LinearRegressor"})
STAGE_PREFIX = "fusebox_stage"
"""Names of the added stage nodes and their outputs start with this."""
_NODE_LISTS = (
    "nodes_treeids",
    "nodes_nodeids",
    "nodes_featureids",
    "nodes_modes",
    "nodes_values",
    "nodes_values_as_tensor",
    "nodes_truenodeids",
    "nodes_falsenodeids",
    "nodes_hitrates",
    "nodes_hitrates_as_tensor",
    "nodes_missing_value_tracks_true",
)
_LEAF_PREFIX = {"TreeEnsembleClassifier": "class", "TreeEnsembleRegressor": "target"}
_V5_SUM, _V5_AVERAGE = 1, 0


def is_classic(model: onnx.ModelProto) -> bool:
    """The model holds classic-model operators, which only ONNX Runtime computes."""
    return any(node.domain == ML_DOMAIN for node in model.graph.node)


@dataclass(frozen=True)
class StageGroup:
    tensor: str
    """The group's partial raw score, [N, targets]."""
    trees: int
    """Trees in the group (0 for a linear model's score)."""
    first_tree: int
    """Position of its first tree among the ensemble's trees."""


@dataclass(frozen=True)
class Estimator:
    """The ai.onnx.ml operator that computes a classic model's score from its preprocessed features."""

    position: int
    node: onnx.NodeProto

    @property
    def is_trees(self) -> bool:
        return self.node.op_type in TREE_ESTIMATORS

    @property
    def tree_count(self) -> int:
        return len(_tree_order(self.node)) if self.is_trees else 0

    @property
    def score_width(self) -> int:
        """Values per row of a stage group's partial raw score: targets, or class scores."""
        attrs = {attr.name: attr for attr in self.node.attribute}
        if self.node.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            return _targets(self.node, attrs)
        if self.node.op_type == "LinearClassifier":
            return len(attrs["intercepts"].floats) if "intercepts" in attrs else len(attrs["classlabels_ints"].ints)
        name = "n_targets" if self.node.op_type == "TreeEnsemble" else "targets"
        return attrs[name].i if name in attrs else 1


def find_estimator(model: onnx.ModelProto, output: str | None = None) -> Estimator | None:
    """The last tree ensemble or linear model the output depends on, or None for a neural model."""
    graph = model.graph
    producer = {name: i for i, node in enumerate(graph.node) for name in node.output if name}
    stack = [output or graph.output[0].name]
    seen: set[int] = set()
    while stack:
        position = producer.get(stack.pop())
        if position is None or position in seen:
            continue
        seen.add(position)
        node = graph.node[position]
        if node.domain == ML_DOMAIN and node.op_type in TREE_ESTIMATORS | LINEAR_ESTIMATORS:
            return Estimator(position, node)
        stack.extend(name for name in node.input if name)
    return None


def stage_groups(estimator: Estimator, groups: int) -> list[StageGroup]:
    """The stage groups of `groups` requested (fewer when there are fewer trees), shallow to deep."""
    if not estimator.is_trees or not _splittable(estimator.node):
        count = estimator.tree_count
        return [StageGroup(f"{STAGE_PREFIX}_score", count, 0)]
    bounds = np.linspace(0, estimator.tree_count, min(groups, estimator.tree_count) + 1).round().astype(int)
    return [
        StageGroup(f"{STAGE_PREFIX}{number}_trees{start}to{stop - 1}", int(stop - start), int(start))
        for number, (start, stop) in enumerate(itertools.pairwise(bounds), start=1)
    ]


def existing_stage_groups(model: onnx.ModelProto, estimator: Estimator) -> list[StageGroup] | None:
    """The stage groups `with_stages` added to this graph, or None when it has none."""
    count = sum(1 for node in model.graph.node if node.name.startswith(STAGE_PREFIX))
    return stage_groups(estimator, count) if count else None


def with_stages(model: onnx.ModelProto, groups: int) -> tuple[onnx.ModelProto, list[StageGroup]]:
    """A copy of a classic model whose graph also computes each stage group's partial raw score, placed
    right after the estimator (the graph stays in topological order); the model's own nodes are untouched."""
    estimator = find_estimator(model)
    if estimator is None:
        raise ValueError("the model has no tree ensemble or linear model (ai.onnx.ml) to split into stage groups")
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    present = existing_stage_groups(extended, estimator)
    if present is not None:
        return extended, present
    planned = stage_groups(estimator, groups)
    nodes = [_stage_node(estimator, planned, i) for i in range(len(planned))]
    for offset, node in enumerate(nodes, start=1):
        extended.graph.node.insert(estimator.position + offset, node)
    return extended, planned


def _stage_node(estimator: Estimator, groups: list[StageGroup], index: int) -> onnx.NodeProto:
    node, group = estimator.node, groups[index]
    name = group.tensor
    if node.op_type in LINEAR_ESTIMATORS:
        copy = _copy_with(node, name, {"post_transform": b"NONE"})
        copy.output[:] = [f"{name}_label", name] if node.op_type == "LinearClassifier" else [name]
        return copy
    trees = _tree_order(node)[group.first_tree : group.first_tree + group.trees]
    if node.op_type == "TreeEnsemble":
        return _v5_stage(node, name, trees, first=index == 0)
    return _v1_stage(node, name, set(trees), first=index == 0)


def _v1_stage(node: onnx.NodeProto, name: str, trees: set[int], first: bool) -> onnx.NodeProto:
    """TreeEnsembleClassifier/Regressor trees -> a TreeEnsembleRegressor over those trees, raw sums."""
    attrs = {attr.name: attr for attr in node.attribute}
    prefix = _LEAF_PREFIX[node.op_type]
    keep_nodes = np.isin(np.array(attrs["nodes_treeids"].ints), list(trees))
    keep_leaves = np.isin(np.array(attrs[f"{prefix}_treeids"].ints), list(trees))
    targets = _targets(node, attrs)
    scale = 1.0
    if text_attribute(attrs, "aggregate_function", "SUM") == "AVERAGE":
        scale = 1.0 / len(_tree_order(node))  # the whole forest's average, split among the groups
    stage = helper.make_node("TreeEnsembleRegressor", [node.input[0]], [name], name=name, domain=ML_DOMAIN)
    for list_name in _NODE_LISTS:
        if list_name in attrs:
            stage.attribute.append(_subset(attrs[list_name], keep_nodes, list_name))
    for suffix in ("treeids", "nodeids", "ids", "weights", "weights_as_tensor"):
        source = attrs.get(f"{prefix}_{suffix}")
        if source is not None:
            stage.attribute.append(
                _subset(source, keep_leaves, f"target_{suffix}", scale if "weights" in suffix else 1)
            )
    base = attrs.get("base_values") or attrs.get("base_values_as_tensor")
    if first and base is not None:
        stage.attribute.append(_copy_attribute(base))
    stage.attribute.extend(
        [
            helper.make_attribute("n_targets", targets),
            helper.make_attribute("post_transform", "NONE"),
            helper.make_attribute("aggregate_function", "SUM"),
        ]
    )
    return stage


def _v5_stage(node: onnx.NodeProto, name: str, trees: list[int], first: bool) -> onnx.NodeProto:
    """TreeEnsemble (ai.onnx.ml 5) keeps every node and leaf; only the listed roots are evaluated."""
    del first  # TreeEnsemble has no base values
    attrs = {attr.name: attr for attr in node.attribute}
    roots = list(attrs["tree_roots"].ints)
    overrides: dict[str, object] = {
        "tree_roots": [roots[i] for i in trees],
        "post_transform": 0,
        "aggregate_function": _V5_SUM,
    }
    if (attrs["aggregate_function"].i if "aggregate_function" in attrs else _V5_SUM) == _V5_AVERAGE:
        weights = numpy_helper.to_array(attrs["leaf_weights"].t) / len(roots)
        overrides["leaf_weights"] = numpy_helper.from_array(weights)
    stage = _copy_with(node, name, overrides)
    stage.output[:] = [name]
    return stage


def _tree_order(node: onnx.NodeProto) -> list[int]:
    """Tree ids (or, for TreeEnsemble, root positions) in the order the ensemble lists them."""
    attrs = {attr.name: attr for attr in node.attribute}
    if node.op_type == "TreeEnsemble":
        return list(range(len(attrs["tree_roots"].ints)))
    return list(dict.fromkeys(attrs["nodes_treeids"].ints))


def _splittable(node: onnx.NodeProto) -> bool:
    """MIN and MAX aggregates do not add up over groups: such an ensemble stays one group."""
    attrs = {attr.name: attr for attr in node.attribute}
    if node.op_type == "TreeEnsemble":
        return (attrs["aggregate_function"].i if "aggregate_function" in attrs else _V5_SUM) in (_V5_SUM, _V5_AVERAGE)
    return text_attribute(attrs, "aggregate_function", "SUM") in ("SUM", "AVERAGE")


def _targets(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> int:
    if node.op_type == "TreeEnsembleRegressor":
        return attrs["n_targets"].i if "n_targets" in attrs else 1
    return max(attrs["class_ids"].ints, default=0) + 1


def text_attribute(attrs: dict[str, onnx.AttributeProto], name: str, default: str) -> str:
    attr = attrs.get(name)
    return attr.s.decode() if attr is not None and attr.s else default


def _subset(attr: onnx.AttributeProto, keep: np.ndarray, name: str, scale: float = 1.0) -> onnx.AttributeProto:
    """The attribute's entries where `keep` is true, under a new name; weights multiplied by `scale`."""
    if attr.HasField("t"):
        values = numpy_helper.to_array(attr.t)[keep] * scale
        return helper.make_attribute(name, numpy_helper.from_array(values.astype(values.dtype)))
    if attr.floats:
        return helper.make_attribute(name, [float(v) * scale for v in np.array(attr.floats)[keep]])
    if attr.strings:
        return helper.make_attribute(name, [s for s, k in zip(attr.strings, keep, strict=True) if k])
    return helper.make_attribute(name, [int(v) for v in np.array(attr.ints, dtype=np.int64)[keep]])


def _copy_attribute(attr: onnx.AttributeProto) -> onnx.AttributeProto:
    copy = onnx.AttributeProto()
    copy.CopyFrom(attr)
    return copy


def _copy_with(node: onnx.NodeProto, name: str, overrides: dict[str, object]) -> onnx.NodeProto:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.name = name
    kept = [attr for attr in copy.attribute if attr.name not in overrides]
    del copy.attribute[:]
    copy.attribute.extend(kept)
    copy.attribute.extend(helper.make_attribute(key, value) for key, value in overrides.items())
    return copy


def parameter_count(node: onnx.NodeProto) -> int:
    """A classic operator's learned numbers: split thresholds, leaf weights, coefficients, offsets."""
    learned = {"nodes_values", "class_weights", "target_weights", "leaf_weights", "nodes_splits"}
    learned |= {"coefficients", "intercepts", "base_values", "offset", "scale"}
    total = 0
    for attr in node.attribute:
        if attr.name.removesuffix("_as_tensor") in learned:
            total += int(np.prod(attr.t.dims)) if attr.HasField("t") else len(attr.floats)
    return total
