"""Source models as fusion sees them: how data columns feed their inputs, and which component outputs
stand for each fusion level."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import onnx
import pandas as pd

from fusion.classic import is_classic, with_stages
from fusion.decompose import Decomposition, decompose
from fusion.graph import GraphView
from fusion.intake import LoadedModel, ModelSignature
from fusion.onnx_runtime import run_model


@dataclass(frozen=True)
class FusionSource:
    """A trained single-task model taking part in a fusion."""

    name: str
    task: str
    loaded: LoadedModel
    input_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Columns feeding each model input. Inputs of width 1 default to the column of the same name."""

    def __post_init__(self) -> None:
        for spec in self.signature.inputs:
            columns = self.input_columns.get(spec.name, (spec.name,))
            if len(columns) != spec.width:
                raise ValueError(
                    f"model '{self.name}': input '{spec.name}' takes {spec.width} values per row; "
                    f"name {spec.width} columns for it in input_columns (got {list(columns)})"
                )

    @property
    def model(self) -> onnx.ModelProto:
        return self.loaded.model

    @property
    def signature(self) -> ModelSignature:
        return self.loaded.signature

    @cached_property
    def decomposition(self) -> Decomposition:
        return decompose(self.model)

    @property
    def computed_by_runtime(self) -> bool:
        """A classic model (ai.onnx.ml): ONNX Runtime computes it in every strategy, and nothing of it is
        differentiated, trained or injected into."""
        return is_classic(self.model)

    def columns_of(self, input_name: str) -> tuple[str, ...]:
        return self.input_columns.get(input_name, (input_name,))

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c for spec in self.signature.inputs for c in self.columns_of(spec.name)))

    def feed(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """The model's input arrays for the rows of `frame`."""
        feed = {}
        for spec in self.signature.inputs:
            columns = [frame[column].to_numpy(dtype=spec.dtype) for column in self.columns_of(spec.name)]
            feed[spec.name] = columns[0].copy() if _is_vector(spec.rank) else np.stack(columns, axis=1)
        return feed

    def probe_feed(self, rows: int = 2) -> dict[str, np.ndarray]:
        """Zeros for every input: id 0 and value 0 are valid for any model."""
        return {
            spec.name: np.zeros((rows,) if _is_vector(spec.rank) else (rows, spec.width), dtype=spec.dtype)
            for spec in self.signature.inputs
        }


def _is_vector(rank: int) -> bool:
    return rank == 1


@dataclass(frozen=True)
class LevelPlan:
    """The component output standing for each fusion level, shallow to deep, and its flattened width."""

    tensors: tuple[str, ...]
    widths: tuple[int, ...]
    computed_by_runtime: bool = False
    """The source is a classic model: its levels come from ONNX Runtime and receive no injections."""

    def injects_before(self, level: int) -> bool:
        """Level `level` receives an injection when a trainable component lies between it and the one before."""
        return not self.computed_by_runtime and level > 0 and self.tensors[level] != self.tensors[level - 1]


def with_stage_groups(source: FusionSource, levels: int) -> FusionSource:
    """A classic source whose graph also computes its stage groups (one per level where it has the trees),
    so that they are component outputs like any other; other sources as they are."""
    if not source.computed_by_runtime:
        return source
    model, _ = with_stages(source.model, levels)
    return replace(source, loaded=LoadedModel(model=model, signature=source.signature))


def plan_levels(source: FusionSource, levels: int) -> LevelPlan:
    """Spread the source's representation spine over `levels` fusion levels, deepest last.

    Level l (1-based) takes spine entry ceil(l * S / levels) - 1 of the S usable entries, so a deep
    model contributes evenly spaced components and a shallow one repeats its few.
    """
    spine = usable_spine(source)
    if not spine:
        raise ValueError(f"model '{source.name}': no component output with a batch axis was found to fuse")
    names = list(spine)
    picks = [names[math.ceil(level * len(names) / levels) - 1] for level in range(1, levels + 1)]
    return LevelPlan(
        tensors=tuple(picks),
        widths=tuple(spine[name] for name in picks),
        computed_by_runtime=source.computed_by_runtime,
    )


def usable_spine(source: FusionSource) -> dict[str, int]:
    """Spine tensors that are float, batch-major, and at least 2-D, with their flattened widths.

    Widths come from a probe run, because static shape inference cannot always resolve them.
    """
    view = GraphView.of(source.model)
    candidates = [name for name in source.decomposition.spine if (view.dtype(name) or "float32").startswith("float")]
    probe = run_model(source.model, source.probe_feed(rows=3), extra_outputs=candidates)
    usable = {}
    for name in candidates:
        value = probe[name]
        if value.ndim >= 2 and value.shape[0] == 3 and np.issubdtype(value.dtype, np.floating):
            usable[name] = int(np.prod(value.shape[1:]))
    return usable
