"""Source component outputs of one batch of rows, computed with ONNX Runtime.

The one function from (source, plan, input rows) to the outputs fusion reads: each fusion level's
component output, flattened to [rows, width], and the source model's own output. The `frozen` strategy
calls it per training batch when stored outputs would not fit their byte budget, and per chunk when it
stores them (cache.py); anything else that needs a graph's inner tensors from ONNX Runtime can reuse it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import onnxruntime as ort
import pandas as pd

from fusion.akf.sources import FusionSource, LevelPlan
from fusion.onnx_runtime import create_session, run_session, with_outputs


@dataclass(frozen=True)
class ComponentOutputs:
    """One source model on some rows: each level's component output [rows, width], and its own output."""

    levels: tuple[np.ndarray, ...]
    output: np.ndarray


class ComponentRunner:
    """A source model's ONNX Runtime session with its level tensors exposed as outputs, created on first
    use and reused for every batch (building a session costs far more than running one batch)."""

    def __init__(self, source: FusionSource, plan: LevelPlan) -> None:
        self.source = source
        self.plan = plan

    @cached_property
    def session(self) -> ort.InferenceSession:
        return create_session(with_outputs(self.source.model, self.plan.tensors))

    def __call__(self, frame: pd.DataFrame) -> ComponentOutputs:
        """The outputs for the rows of `frame`, which holds at least the source's input columns."""
        return component_outputs(self.session, self.source, self.plan, frame)

    def release(self) -> None:
        """Drop the session (a later call makes a new one). ONNX Runtime's memory arena keeps what the
        largest run needed for as long as its session lives: with the four Census sources, about 1 GB that
        training, which reads stored outputs, would otherwise carry."""
        self.__dict__.pop("session", None)


def component_outputs(
    session: ort.InferenceSession, source: FusionSource, plan: LevelPlan, frame: pd.DataFrame
) -> ComponentOutputs:
    """Run `session` (the source's graph with the plan's tensors as extra outputs) on `frame`'s rows."""
    output_name = source.signature.output_name
    wanted = [*dict.fromkeys(plan.tensors), output_name]
    results = run_session(session, source.feed(frame), wanted)
    rows = len(frame)
    return ComponentOutputs(
        levels=tuple(results[name].reshape(rows, -1) for name in plan.tensors),
        output=results[output_name],
    )


def row_bytes(plan: LevelPlan, output_width: int, itemsize: int) -> int:
    """Bytes one row of a source's stored outputs takes: every level's width and the output's."""
    return (sum(plan.widths) + output_width) * itemsize
