"""How many categories an id input may take: the rows of the embedding table it indexes.

Datasets are checked against this before a job is queued, so an out-of-range id fails early with a clear
message instead of deep inside training. The answer must be right or None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx

from fusion.intake.graph import DEFAULT_DOMAINS, GraphIndex
from fusion.intake.signature import Dims

_SAME_IDS = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity"}
"""Ops that move ids around without changing their values (Cast only to an integer type)."""
_INTEGER_TYPES = {
    onnx.TensorProto.INT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.UINT16,
    onnx.TensorProto.UINT32,
    onnx.TensorProto.UINT64,
}


class _Unsure(Exception):
    """The ids pass through something this analysis cannot follow exactly."""


@dataclass(frozen=True)
class _Ids:
    """Where one input's ids land: in [offset, limit) of a table (limit None: up to its last row).

    `column` is the input's position once it has been stacked with other id fields by a Concat; per-field
    offsets added afterwards are read at that position.
    """

    offset: int = 0
    limit: int | None = None
    column: int | None = None

    def shifted(self, constant: np.ndarray) -> _Ids:
        values = constant.reshape(-1) if constant.ndim <= 1 or constant.shape[0] == 1 else None
        if values is None or not np.issubdtype(values.dtype, np.integer):
            raise _Unsure
        if values.size == 1:
            step = int(values[0])
            return replace(self, offset=self.offset + step, limit=None if self.limit is None else self.limit + step)
        if self.column is None or self.limit is not None or self.column >= values.size:
            raise _Unsure
        if np.any(np.diff(values) <= 0):
            raise _Unsure  # per-field offsets are cumulative; anything else is not a stacked table
        following = int(values[self.column + 1]) if self.column + 1 < values.size else None
        return replace(
            self,
            offset=self.offset + int(values[self.column]),
            limit=None if following is None else self.offset + following,
        )

    def rows_in(self, table_rows: int) -> int:
        limit = table_rows if self.limit is None else self.limit
        if self.offset < 0 or limit > table_rows or limit - self.offset <= 0:
            raise _Unsure
        return limit - self.offset


def find_cardinalities(graph: onnx.GraphProto, names: list[str], shapes: dict[str, Dims]) -> dict[str, int | None]:
    """For each id input, the rows of the embedding table(s) it indexes (the fewest, if several)."""
    index = GraphIndex(graph)
    return {name: _cardinality(index, name, shapes) for name in names}


def _cardinality(index: GraphIndex, name: str, shapes: dict[str, Dims]) -> int | None:
    """Follow the ids forward to every constant table they index; None when any step is unclear."""
    found: list[int] = []
    stack, seen = [(name, _Ids())], set()
    try:
        while stack:
            tensor, ids = stack.pop()
            if (tensor, ids) in seen:
                continue
            seen.add((tensor, ids))
            for node, position in index.consumers.get(tensor, []):
                if node.domain not in DEFAULT_DOMAINS:
                    continue
                if node.op_type == "Gather" and position == 1:
                    rows = _table_rows(index, node)
                    if rows is not None:
                        found.append(ids.rows_in(rows))
                    continue
                following = _follow(index, node, position, ids, shapes)
                if following is not None:
                    stack.append((node.output[0], following))
    except _Unsure:
        return None
    return min(found) if found else None


def _follow(index: GraphIndex, node: onnx.NodeProto, position: int, ids: _Ids, shapes: dict[str, Dims]) -> _Ids | None:
    """The ids at the node's output, or None where they stop being ids (e.g. cast to float, Shape)."""
    op = node.op_type
    if op == "Cast":
        to = next((attr.i for attr in node.attribute if attr.name == "to"), None)
        return ids if to in _INTEGER_TYPES else None
    if op in _SAME_IDS:
        return ids if position == 0 else None
    if op in ("Add", "Sub"):
        constant = index.constant(node.input[1 - position])
        if constant is None or (op == "Sub" and position == 1):
            raise _Unsure
        return ids.shifted(-constant if op == "Sub" else constant)
    if op == "Concat":
        return replace(ids, column=_stacked_column(node, position, ids, shapes))
    return None


def _stacked_column(node: onnx.NodeProto, position: int, ids: _Ids, shapes: dict[str, Dims]) -> int:
    """The column a width-1 id tensor takes when Concat stacks it along the last axis with others."""
    axis = next((attr.i for attr in node.attribute if attr.name == "axis"), 0)
    widths = []
    for name in node.input[: position + 1]:
        dims = shapes.get(name)
        width = dims[1] if dims is not None and len(dims) == 2 else None
        if not isinstance(width, int):
            raise _Unsure
        widths.append(width)
    if ids.column is not None or axis not in (1, -1) or widths[-1] != 1:
        raise _Unsure
    return sum(widths[:-1])


def _table_rows(index: GraphIndex, gather: onnx.NodeProto) -> int | None:
    """The first dimension of a constant embedding table gathered along axis 0, else None."""
    axis = next((attr.i for attr in gather.attribute if attr.name == "axis"), 0)
    table = index.constant_tensor(gather.input[0])
    if axis != 0 or table is None or not table.dims:
        return None
    return table.dims[0]
