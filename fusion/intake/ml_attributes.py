"""Attribute checks of the classic-model (ai.onnx.ml) operators.

These operators carry their whole model in attributes: a tree ensemble is a dozen parallel lists (one
entry per node, one per leaf weight), a linear model a flat coefficient list. ONNX's checker does not
compare their lengths, and ONNX Runtime reads past a short list or crashes on a dangling node id, so the
lists are checked here, before the model is ever run, with a message naming the operator and the list.
"""

from __future__ import annotations

import math
from typing import Any

import onnx

from fusion.intake.graph import all_nodes
from fusion.intake.records import ModelRejected
from fusion.supported_ops import ML_DOMAIN

POST_TRANSFORMS = frozenset({"NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"})
_BRANCH_MODES = frozenset({"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"})
_TREE_NODE_LISTS = (
    "nodes_treeids",
    "nodes_nodeids",
    "nodes_featureids",
    "nodes_modes",
    "nodes_values",
    "nodes_truenodeids",
    "nodes_falsenodeids",
)
_TREE_OPTIONAL_NODE_LISTS = ("nodes_hitrates", "nodes_missing_value_tracks_true")
_LEAF_LISTS = {
    "TreeEnsembleClassifier": ("class_treeids", "class_nodeids", "class_ids", "class_weights"),
    "TreeEnsembleRegressor": ("target_treeids", "target_nodeids", "target_ids", "target_weights"),
}
_V5_NODE_LISTS = (
    "nodes_featureids",
    "nodes_splits",
    "nodes_modes",
    "nodes_truenodeids",
    "nodes_falsenodeids",
    "nodes_trueleafs",
    "nodes_falseleafs",
)


def attributes(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {attr.name: attr for attr in node.attribute}


def values(attr: onnx.AttributeProto | None) -> list[Any]:
    """An attribute's list (ints, floats or strings), or a tensor attribute's elements, or []."""
    if attr is None:
        return []
    if attr.HasField("t"):
        return list(onnx.numpy_helper.to_array(attr.t).ravel().tolist())
    return list(attr.ints) or list(attr.floats) or list(attr.strings)


def length(attrs: dict[str, onnx.AttributeProto], name: str) -> int:
    """Entries of a list attribute, looking at its `_as_tensor` twin when the plain one is absent."""
    attr = attrs.get(name) or attrs.get(f"{name}_as_tensor")
    if attr is None:
        return 0
    if attr.HasField("t"):
        return math.prod(attr.t.dims)
    return len(attr.ints) + len(attr.floats) + len(attr.strings)


def text(attrs: dict[str, onnx.AttributeProto], name: str, default: str) -> str:
    attr = attrs.get(name)
    return attr.s.decode(errors="replace") if attr is not None and attr.s else default


def check_ml_attributes(graph: onnx.GraphProto) -> None:
    for node in all_nodes(graph):
        if node.domain != ML_DOMAIN:
            continue
        check = _CHECKS.get(node.op_type)
        if check is not None:
            check(node, attributes(node))


def _rejected(node: onnx.NodeProto, problem: str) -> ModelRejected:
    return ModelRejected(
        f"The {node.op_type} operator '{node.name or node.output[0]}' is inconsistent: {problem}. The converter "
        "wrote a broken model; re-export it with a current onnxmltools or skl2onnx."
    )


def _same_lengths(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto], names: tuple[str, ...]) -> int:
    lengths = {name: length(attrs, name) for name in names}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        listed = ", ".join(f"{name} {count}" for name, count in lengths.items())
        raise _rejected(node, f"its lists must have the same, non-zero number of entries ({listed})")
    return next(iter(lengths.values()))


def _check_post_transform(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    post = text(attrs, "post_transform", "NONE")
    if post not in POST_TRANSFORMS:
        raise _rejected(node, f"post_transform '{post}' is not one of {', '.join(sorted(POST_TRANSFORMS))}")


def _check_tree_ensemble(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    """TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml opsets 1 to 3)."""
    count = _same_lengths(node, attrs, _TREE_NODE_LISTS)
    for name in _TREE_OPTIONAL_NODE_LISTS:
        if length(attrs, name) not in (0, count):
            raise _rejected(node, f"{name} has {length(attrs, name)} entries for {count} nodes")
    leaf_lists = _LEAF_LISTS[node.op_type]
    _same_lengths(node, attrs, leaf_lists)
    _check_post_transform(node, attrs)
    trees = values(attrs.get("nodes_treeids"))
    ids = values(attrs.get("nodes_nodeids"))
    modes = [
        mode.decode(errors="replace") if isinstance(mode, bytes) else str(mode) for mode in values(attrs["nodes_modes"])
    ]
    known = set(zip(trees, ids, strict=True))
    if len(known) != count:
        raise _rejected(node, "two nodes share the same (tree id, node id)")
    bad_mode = next((mode for mode in modes if mode != "LEAF" and mode not in _BRANCH_MODES), None)
    if bad_mode is not None:
        raise _rejected(node, f"node mode '{bad_mode}' is not LEAF or a BRANCH_ mode")
    if any(feature < 0 for feature in values(attrs.get("nodes_featureids"))):
        raise _rejected(node, "a node reads a negative feature index")
    for branch in ("nodes_truenodeids", "nodes_falsenodeids"):
        for tree, target, mode in zip(trees, values(attrs.get(branch)), modes, strict=True):
            if mode != "LEAF" and (tree, target) not in known:
                raise _rejected(node, f"{branch} points at node {target}, which tree {tree} does not have")
    leaves = {(tree, nid) for tree, nid, mode in zip(trees, ids, modes, strict=True) if mode == "LEAF"}
    tree_list, node_list, target_list = leaf_lists[:3]
    for tree, nid in zip(values(attrs.get(tree_list)), values(attrs.get(node_list)), strict=True):
        if (tree, nid) not in leaves:
            raise _rejected(node, f"{node_list} names node {nid} of tree {tree}, which is not a leaf")
    if node.op_type == "TreeEnsembleClassifier":
        targets = length(attrs, "classlabels_int64s") or length(attrs, "classlabels_strings")
        what = "class labels"
    else:
        targets = attrs["n_targets"].i if "n_targets" in attrs else 1
        what = "n_targets"
    _check_targets(node, values(attrs.get(target_list)), targets, what)
    if length(attrs, "base_values") not in (0, 1, targets):
        raise _rejected(node, f"base_values has {length(attrs, 'base_values')} entries for {targets} {what}")


def _check_targets(node: onnx.NodeProto, target_ids: list[Any], targets: int, what: str) -> None:
    if targets < 1:
        raise _rejected(node, f"it declares {targets} {what}")
    outside = next((target for target in target_ids if not 0 <= target < targets), None)
    if outside is not None:
        raise _rejected(node, f"a leaf writes to target {outside}, outside the {targets} {what}")


def _check_tree_ensemble_v5(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    """TreeEnsemble (ai.onnx.ml opset 5): nodes and leaves in separate arrays, trees by their root index."""
    nodes = _same_lengths(node, attrs, _V5_NODE_LISTS)
    leaves = _same_lengths(node, attrs, ("leaf_targetids", "leaf_weights"))
    _check_post_transform(node, attrs)
    roots = values(attrs.get("tree_roots"))
    if not roots or any(not 0 <= root < nodes for root in roots):
        raise _rejected(node, f"tree_roots must name nodes 0 to {nodes - 1}")
    is_leaf = ("nodes_trueleafs", "nodes_truenodeids"), ("nodes_falseleafs", "nodes_falsenodeids")
    for leaf_flags, targets in is_leaf:
        for flag, target in zip(values(attrs[leaf_flags]), values(attrs[targets]), strict=True):
            if not 0 <= target < (leaves if flag else nodes):
                raise _rejected(
                    node, f"{targets} points at {'leaf' if flag else 'node'} {target}, which does not exist"
                )
    _check_targets(
        node, values(attrs.get("leaf_targetids")), attrs["n_targets"].i if "n_targets" in attrs else 1, "n_targets"
    )


def _check_linear(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    """LinearClassifier and LinearRegressor: one row of coefficients per class or target."""
    _check_post_transform(node, attrs)
    coefficients = length(attrs, "coefficients")
    if node.op_type == "LinearClassifier":
        rows = length(attrs, "intercepts") or length(attrs, "classlabels_ints") or length(attrs, "classlabels_strings")
    else:
        rows = attrs["targets"].i if "targets" in attrs else 1
        if length(attrs, "intercepts") not in (0, rows):
            raise _rejected(node, f"intercepts has {length(attrs, 'intercepts')} entries for {rows} targets")
    if rows < 1 or coefficients == 0 or coefficients % rows:
        raise _rejected(node, f"{coefficients} coefficients do not split into {rows} rows of equal length")


def _check_scaler(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    offsets, scales = length(attrs, "offset"), length(attrs, "scale")
    if offsets != scales and 1 not in (offsets, scales):
        raise _rejected(node, f"offset has {offsets} entries and scale {scales}; give them one per feature")


def _check_normalizer(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    if text(attrs, "norm", "MAX") not in ("MAX", "L1", "L2"):
        raise _rejected(node, f"norm '{text(attrs, 'norm', '')}' is not MAX, L1 or L2")


def _check_imputer(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    if not (length(attrs, "imputed_value_floats") or length(attrs, "imputed_value_int64s")):
        raise _rejected(node, "it names no imputed values")


def _check_one_hot(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    if bool(length(attrs, "cats_int64s")) == bool(length(attrs, "cats_strings")):
        raise _rejected(node, "it must list its categories in exactly one of cats_int64s and cats_strings")


def _check_feature_vectorizer(node: onnx.NodeProto, attrs: dict[str, onnx.AttributeProto]) -> None:
    if length(attrs, "inputdimensions") != len(node.input):
        raise _rejected(
            node, f"inputdimensions has {length(attrs, 'inputdimensions')} entries for {len(node.input)} inputs"
        )


_CHECKS = {
    "TreeEnsembleClassifier": _check_tree_ensemble,
    "TreeEnsembleRegressor": _check_tree_ensemble,
    "TreeEnsemble": _check_tree_ensemble_v5,
    "LinearClassifier": _check_linear,
    "LinearRegressor": _check_linear,
    "Scaler": _check_scaler,
    "Normalizer": _check_normalizer,
    "Imputer": _check_imputer,
    "OneHotEncoder": _check_one_hot,
    "FeatureVectorizer": _check_feature_vectorizer,
}
