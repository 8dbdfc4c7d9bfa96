"""How export.py wires the AKF graph to the source graphs it copies in: component outputs that shape inference
declares [batch, width] are read where they are (a Flatten of a tensor that the source's next layer also reads
is a copy in ONNX Runtime), others through a Flatten; an injection reaches the sources' next layers but never
the AKF graph, which reads the output before it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from fusion.akf.export import ExportPlan, export_fused
from fusion.akf.model import AKFConfig, AKFusion
from fusion.akf.pipeline import _layout
from fusion.akf.sources import FusionSource, plan_levels
from fusion.data.census import CensusData
from fusion.intake.runtime import known_shapes
from fusion.onnx_runtime import create_session, run_session
from fusion.spec import Strategy


@pytest.mark.parametrize("strategy", [Strategy.FROZEN, Strategy.ADAPTIVE])
def test_head_reads_component_outputs_where_they_are(
    strategy: Strategy, census_small: CensusData, trained_sources: list[FusionSource]
) -> None:
    config = AKFConfig()
    plans = [plan_levels(source, config.levels) for source in trained_sources]
    layout = _layout(census_small.tasks, trained_sources, plans)
    fusion = AKFusion(layout, config, adaptive=strategy != Strategy.FROZEN).eval()
    model = export_fused(fusion, ExportPlan(census_small.tasks, trained_sources, plans, strategy, {}, {}))

    head_reads = {name for node in model.graph.node if node.name.startswith("akf/") for name in node.input}
    source_readers: dict[str, set[str]] = {}
    for node in model.graph.node:
        if not node.name.startswith("akf/"):
            for name in node.input:
                source_readers.setdefault(name, set()).add(node.name)
    injected, in_place = 0, 0
    for i, (source, plan) in enumerate(zip(trained_sources, plans, strict=True)):
        shapes = known_shapes(onnx.shape_inference.infer_shapes(source.model).graph)
        for level, tensor in enumerate(plan.tensors):
            component = f"s{i}/{tensor}"
            if len(shapes.get(tensor) or ()) == 2:
                assert component in head_reads, f"{component} reaches the AKF graph through a copy"
                in_place += 1
            else:
                assert f"{component}/flat" in head_reads
            assert f"{component}/injected" not in head_reads
            if strategy != Strategy.FROZEN and level + 1 < config.levels and plan.injects_before(level + 1):
                injected += 1
                # Only the injection's own nodes read the output before it; the source's next layer reads the sum.
                assert source_readers[component] <= {f"{component}/{node}" for node in ("shape", "injected", "flat")}
                assert source_readers[f"{component}/injected"]
    assert in_place and (injected or strategy == Strategy.FROZEN)

    rows = census_small.test.head(16)
    feed = {name: values for source in trained_sources for name, values in source.feed(rows).items()}
    session = create_session(model)
    answers = run_session(session, {value.name: feed[value.name] for value in session.get_inputs()})
    assert all(np.isfinite(values).all() for values in answers.values())
