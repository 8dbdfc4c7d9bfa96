"""Where a running fusion stops when asked: between chunks of source model outputs, leaving no half-written
cache entry (training steps are tests/test_fusion.py's; a job process that does not stop in time is killed,
tests/test_supervisor.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fusion.akf.cache import ComponentCache
from fusion.akf.components import ComponentRunner
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
    runner = ComponentRunner(source, plan_levels(source, 3))
    with pytest.raises(Cancelled, match=source.name):
        cache.outputs(runner, table)
    assert len(asked) == 3, "asked before each chunk, and stopped at once"
    (entry,) = (tmp_path / "cache").iterdir()
    stored = sorted(path.name for path in entry.iterdir())
    assert stored == [f"shard-{i:06d}.{part}.npy" for i in range(2) for part in ("levels", "output")], (
        "the two chunks before the stop, no scratch file, and no mark of a complete entry"
    )

    finished = ComponentCache(tmp_path / "cache", should_stop=lambda: False).outputs(runner, table)
    assert sum(len(finished.read(chunk).output) for chunk in table.chunks) == table.num_rows
    assert (entry / "complete").exists(), "the next pass finished what the stopped one began"
