"""Shared fixtures. Data comes from the real Census-Income files (downloaded once per machine)."""

from __future__ import annotations

import pytest

from fusion.data.census import CensusData, load_census, subsample


@pytest.fixture(scope="session")
def census_small() -> CensusData:
    """A fixed subsample: 20,000 training rows, 5,000 validation and 5,000 test rows."""
    return subsample(load_census(), rows=20_000, seed=0)
