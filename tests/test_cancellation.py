"""Where a running fusion stops when asked: between chunks of source model outputs, leaving no half-written
cache entry (training steps are tests/test_fusion.py's; a job process that does not stop in time is killed,
tests/test_supervisor.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.akf.cache import ComponentCache
from fusion.akf.sources import FusionSource, plan_levels
from fusion.data.census import CensusData
from fusion.data.tables import FrameTable
from fusion.training import Cancelled


def test_computing_component_outputs_stops_between_chunks(
    census_small: CensusData, trained_sources: list[FusionSource], tmp_path: Path
) -> None:
    table = FrameTable(census_small.train, chunk_rows=1000)
    asked: list[int] = []

    def stop_at_the_third_chunk() -> bool:
        asked.append(1)
        return len(asked) >= 3

    cache = ComponentCache(tmp_path / "cache", should_stop=stop_at_the_third_chunk)
    source = trained_sources[0]
    with pytest.raises(Cancelled, match=source.name):
        cache.outputs(source, plan_levels(source, 3), table)
    assert len(asked) == 3, "asked before each chunk, and stopped at once"
    assert list((tmp_path / "cache").iterdir()) == [], "no entry, and no scratch folder"

    finished = ComponentCache(tmp_path / "cache", should_stop=lambda: False).outputs(
        source, plan_levels(source, 3), table
    )
    assert len(finished.output) == table.num_rows
